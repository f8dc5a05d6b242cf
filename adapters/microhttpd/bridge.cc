// bridge.cc: one request between libmicrohttpd's event loop and the app (see bridge.hh).
//
// Lock order: libmicrohttpd's response mutex (held around the content reader) -> Bridge::mu_
// -> libmicrohttpd's cleanup mutex (taken by MHD_suspend_connection/MHD_resume_connection).
// libmicrohttpd never calls into the Bridge while it holds its cleanup mutex, and the core's
// Request is only called without mu_ held, so app code never runs under it.
#include "bridge.hh"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/context.hh"
#include "http1/writer.hh"
#include "mhd_head.hh"
#include "server.hh"

namespace cwsgi::adapters::mhd {

namespace {

/// Request-body bytes held for the app (the access handler suspends past this).
constexpr size_t kInCap = 64 * 1024;
/// Response bytes held once the response is queued (the app's write blocks past this).
constexpr size_t kOutCap = 64 * 1024;
/// Response bytes held while the response cannot be queued yet because the request body is
/// still arriving (libmicrohttpd 0.9.75 answers only after the whole request): the slack that
/// lets an app echo a body while reading it.
constexpr size_t kOutCapEarly = 256 * 1024;
/// The buffer libmicrohttpd allocates for each fixed-length callback response.
constexpr size_t kBlock = 64 * 1024;
/// An unread request body (the app answered without reading it) of up to this many bytes is
/// read and dropped so that the connection can carry the next request; a larger one makes the
/// response close the connection instead.
constexpr uint64_t kDrainCap = 4 * 1024 * 1024;
/// When the answer is already decided (a 413 for a body over the limit, an early answer) but
/// libmicrohttpd can send it only after the whole request, the rest of the body is read and
/// dropped for up to this long (nginx's lingering close does the same after its answer) and
/// at most kLingerBytes; past either bound the connection closes and the answer is lost.
constexpr auto kLingerTime = std::chrono::seconds(5);
constexpr uint64_t kLingerBytes = uint64_t{1} << 30;

void close_fd(int &fd)
{
    if (fd >= 0) ::close(fd);
    fd = -1;
}

} // namespace

const exec::Task::Hooks Bridge::kTaskHooks = {&Bridge::hook_wake, &Bridge::hook_done, &Bridge::hook_hold,
                                              &Bridge::hook_release, &Bridge::hook_describe};

// One pooled block per request (BlockAllocated): a Bridge that outgrew it would fall back to the
// heap on every request, unnoticed but for the allocation count.
static_assert(sizeof(Bridge) <= core::Arena::kBlockSize, "Bridge no longer fits an arena block");

Bridge::Bridge(Server &server, Conn *conn, const char *uri)
    : srv_(server), conn_info_(conn), target_(uri ? uri : ""), uri_ptr_(reinterpret_cast<uintptr_t>(uri)),
      task_(server.executor(), kTaskHooks, this), in_(kInCap), out_(kOutCapEarly)
{
}

Bridge::~Bridge() { close_fd(file_fd_); }

void Bridge::unref()
{
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::unique_ptr<Bridge> self(this); // the last reference frees it (STYLE: no raw delete)
    }
}

// ---------------------------------------------------------------------------------------------
// libmicrohttpd side

MHD_Result Bridge::on_access(MHD_Connection *conn, const char *method, const char *version, const char *upload,
                             size_t *upload_size)
{
    // Every callback runs what the app side can do now before and after its own step: in
    // cooperative mode that is where the fiber runs (a no-op in threads mode).
    task_.run_pending();
    MHD_Result r = phase_ == Phase::fresh ? first_call(conn, method, version) : access_step(conn, upload, upload_size);
    task_.run_pending();
    return r;
}

MHD_Result Bridge::access_step(MHD_Connection *conn, const char *upload, size_t *upload_size)
{
    std::lock_guard<core::FutexMutex> lk(mu_);
    if (peer_gone_ || stopping_) return MHD_NO; // close: nobody is listening, or we stop
    switch (phase_) {
    case Phase::fresh: // handled above; listed so that the switch covers every phase
    case Phase::held: return after_resume_locked(conn);
    case Phase::body:
        if (*upload_size > 0) {
            if (draining_) {
                drained_ += *upload_size;
                *upload_size = 0;
                if (drained_ > kDrainCap &&
                    (drained_ > kLingerBytes || std::chrono::steady_clock::now() > drain_until_)) {
                    srv_.ctx().log().warning(fmt::format(
                        "{} {}: closing the connection after {} unread body bytes; the {} response was not sent "
                        "(libmicrohttpd answers only after the whole request)",
                        req_ ? req_->head().method : "", target_.substr(0, 200), drained_, head_.status));
                    return MHD_NO;
                }
                return MHD_YES;
            }
            if (aborted_) return MHD_NO;
            size_t n = in_.push(upload, *upload_size, kInCap);
            *upload_size -= n;
            received_ += n;
            if (n > 0) task_.notify();
            if (*upload_size > 0 && !suspend_locked(Wait::input_room)) return MHD_NO;
            if (*upload_size == 0 && body_cut_by_peer_locked()) return MHD_NO;
            return MHD_YES;
        }
        // The call without data after the body: the request is complete, trailers included.
        phase_ = Phase::final_;
        if (!draining_) {
            std::vector<core::Header> trailers;
            // Only what libmicrohttpd's parse hides is checked here (NUL, bare LF, layout); the
            // core checks trailer names and values and drops forbidden fields for every adapter.
            const char *why = collect_fields(conn, MHD_FOOTER_KIND, trailers, nullptr, nullptr);
            if (why != nullptr) {
                srv_.ctx().log().info(fmt::format("{}: malformed request trailer: {}", target_.substr(0, 200), why));
                read_error_ = CWSGI_E_BODY;
            } else {
                trailers_ = std::move(trailers);
                in_eof_ = true;
            }
            task_.notify();
        }
        return final_locked(conn);
    case Phase::final_: return final_locked(conn);
    case Phase::queued: return MHD_YES;
    }
    return MHD_YES;
}

MHD_Result Bridge::first_call(MHD_Connection *conn, const char *method, const char *version)
{
    Conn &ci = *conn_info_;
    const core::Listener &listener = *ci.slot->listener;
    conn_ = conn;
    fd_ = ci.fd;
    if (!ci.addresses_known) {
        // Once per connection: the peer from libmicrohttpd, our side from the socket.
        ci.addresses_known = true;
        if (listener.is_unix) {
            ci.local_addr = listener.spec.path;
        } else {
            if (const MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS)) {
                format_address(info->client_addr, ci.remote_addr, ci.remote_port);
            }
            sockaddr_storage local{};
            socklen_t len = sizeof local;
            if (::getsockname(ci.fd, reinterpret_cast<sockaddr *>(&local), &len) == 0) {
                format_address(reinterpret_cast<sockaddr *>(&local), ci.local_addr, ci.local_port);
            }
        }
    }

    core::RequestHead head;
    // Copies into the head's arena: libmicrohttpd reuses its buffers and frees the Conn when
    // the connection ends, possibly while the app still runs.
    head.method = head.keep(method ? method : "");
    head.target = head.keep(target_);
    head.is_unix = listener.is_unix;
    head.remote_addr = head.keep(ci.remote_addr);
    head.remote_port = head.keep(ci.remote_port);
    head.local_addr = head.keep(ci.local_addr);
    head.local_port = head.keep(ci.local_port);
    parse_http_version(version, head.http_major, head.http_minor);

    // What libmicrohttpd hid from the head, then the core's rules, then whether
    // libmicrohttpd can frame this body the way the core decided.
    MhdFraming framing;
    const char *why =
        method && version ? check_request_line(method, uri_ptr_, target_.size(), version) : "malformed request line";
    const char *rule = "REQ-LINE-1";
    if (why == nullptr) {
        why = collect_fields(conn, MHD_HEADER_KIND, head, &framing, version);
        rule = "REQ-HDR-2";
    }
    if (why != nullptr) {
        core::HeadCheck bad;
        bad.status = 400;
        bad.reason = why;
        bad.rule = rule;
        return reject(conn, head, std::move(bad));
    }
    core::HeadCheck check = core::validate_request_head(head, srv_.config().limits);
    if (check.status != 0) return reject(conn, head, std::move(check));
    if (const char *m = framing_mismatch(check, framing)) {
        check.status = 501;
        check.reason = m;
        check.rule = "REQ-BODY-5";
        return reject(conn, head, std::move(check));
    }

    has_body_ =
        check.body == core::BodyKind::chunked || (check.body == core::BodyKind::length && check.content_length > 0);
    expect_continue_ = check.expect_continue;
    content_length_ = check.body == core::BodyKind::length ? check.content_length : -1;
    if (!task_.prepare()) {
        // No fiber stack could be mapped: the process is out of memory. Refuse this request
        // rather than run the app on the loop's own stack.
        core::HeadCheck busy;
        busy.status = 503;
        busy.reason = "no memory for a fiber stack";
        busy.rule = "THR-7";
        return reject(conn, head, std::move(busy));
    }
    req_ = core::Request::create(srv_.ctx(), std::move(head), check, *this);
    if (!req_) {
        check.status = 500;
        check.reason = "out of memory";
        check.rule = "MEM-ARENA-1";
        core::RequestHead none;
        return reject(conn, none, std::move(check));
    }
    ref(); // the app job's reference, dropped by hook_done
    // Cooperative mode runs the app here until it first waits (for a hello, to its end).
    task_.start(&Bridge::job_run, this);

    std::lock_guard<core::FutexMutex> lk(mu_);
    if (!has_body_ && !expect_continue_) {
        // Nothing to hold back: the next call (libmicrohttpd makes it right away) is the
        // final one, where the Bridge waits for the response.
        phase_ = Phase::body;
        return MHD_YES;
    }
    // Hold the body (and "100 Continue") until the app reads it or answers without it. The
    // app may have done either already, on its own thread. libmicrohttpd sends the 100 for
    // any "Expect: 100-continue" once the first call returns without a response, even when
    // no body is declared, so such a request is held too (INPUT-EXPECT-1).
    phase_ = Phase::held;
    return after_resume_locked(conn);
}

MHD_Result Bridge::reject(MHD_Connection *conn, core::RequestHead &head, core::HeadCheck check)
{
    // The server's own answer, before the body and without the app (LIMIT-*, REQ-*). Queued
    // in the first call, libmicrohttpd closes the connection after it and reads no body.
    core::ErrorResponse err = core::make_error_response(check.status);
    MHD_Response *r = MHD_create_response_from_buffer(err.body.size(), err.body.data(), MHD_RESPMEM_MUST_COPY);
    if (r == nullptr) return MHD_NO;
    for (const core::Header &h : err.headers) {
        if (core::iequals(h.name, "content-length")) continue; // libmicrohttpd writes it
        MHD_add_response_header(r, h.name.c_str(), h.value.c_str());
    }
    MHD_Result ok = MHD_queue_response(conn, check.status, r);
    MHD_destroy_response(r);
    core::log_rejected(srv_.ctx(), head, check, head.method == "HEAD" ? 0 : err.body.size());
    std::lock_guard<core::FutexMutex> lk(mu_);
    phase_ = Phase::queued;
    queued_ = true;
    sent_.store(ok == MHD_YES, std::memory_order_release);
    return ok;
}

MHD_Result Bridge::after_resume_locked(MHD_Connection *conn)
{
    if (response_ready_locked()) {
        // The app answered without reading the body. Reading and dropping a small body keeps
        // the connection usable; with "Expect: 100-continue" the client waits for our word
        // and must not get a 100 (INPUT-EXPECT-2), and a large or chunked body is not worth
        // reading: the early response makes libmicrohttpd close after it.
        bool drain = !expect_continue_ && !aborted_ && content_length_ > 0 &&
                     static_cast<uint64_t>(content_length_) <= kDrainCap;
        if (drain) {
            draining_ = true;
            drain_until_ = std::chrono::steady_clock::now() + kLingerTime;
            phase_ = Phase::body;
            return MHD_YES;
        }
        return queue_locked(conn);
    }
    if (want_body_) {
        // libmicrohttpd now sends "100 Continue" if the client asked for it, and reads.
        phase_ = Phase::body;
        return MHD_YES;
    }
    return suspend_locked(Wait::held) ? MHD_YES : MHD_NO;
}

MHD_Result Bridge::final_locked(MHD_Connection *conn)
{
    if (response_ready_locked()) return queue_locked(conn);
    return suspend_locked(Wait::response) ? MHD_YES : MHD_NO;
}

bool Bridge::response_ready_locked() const
{
    return committed_ && (!out_.empty() || ended_ || aborted_ || flush_ || file_fd_ >= 0);
}

MHD_Result Bridge::queue_locked(MHD_Connection *conn)
{
    MHD_Response *r = build_response_locked();
    if (r == nullptr) {
        srv_.ctx().log().error(fmt::format("{}: libmicrohttpd could not create the response", target_.substr(0, 200)));
        return MHD_NO;
    }
    MHD_Result ok = MHD_queue_response(conn, head_.status, r);
    MHD_destroy_response(r);
    if (ok != MHD_YES) {
        srv_.ctx().log().error(fmt::format("{}: libmicrohttpd refused the response", target_.substr(0, 200)));
        return MHD_NO;
    }
    queued_ = true;
    sent_.store(true, std::memory_order_release);
    phase_ = Phase::queued;
    task_.notify();
    return MHD_YES;
}

MHD_Response *Bridge::build_response_locked()
{
    const core::FramingDecision &f = head_.framing;
    MHD_Response *r = nullptr;
    bool callback = false;
    bool length_free = false;
    if (file_fd_ >= 0) {
        // RESP-FILE-1: sendfile(2) from our dup of the app's descriptor; libmicrohttpd
        // closes it with the response.
        r = MHD_create_response_from_fd_at_offset64(static_cast<uint64_t>(file_count_), file_fd_,
                                                    static_cast<uint64_t>(file_offset_));
        if (r != nullptr) file_fd_ = -1;
    } else if (f.framing == core::Framing::no_body) {
        if (f.send_content_length && f.content_length > 0) {
            // HEAD or 304 with the app's length: libmicrohttpd states it and sends no body
            // (it never calls the reader for these).
            r = MHD_create_response_from_callback(static_cast<uint64_t>(f.content_length), 4096, &content_reader, this,
                                                  &content_reader_free);
            callback = true;
        } else if (f.send_content_length || head_.status == 204) {
            r = MHD_create_response_from_buffer(0, nullptr, MHD_RESPMEM_PERSISTENT);
        } else {
            // No length to state (HEAD of a body of unknown length, 304 without one):
            // libmicrohttpd would invent "Content-Length: 0" for a known size and send a
            // terminal chunk for an unknown one. Unknown size in HTTP/1.0-compatible mode
            // sends neither; the price is that the connection closes after this response.
            r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, &content_reader, this, &content_reader_free);
            callback = true;
            length_free = true;
        }
    } else if (f.framing == core::Framing::length && !aborted_ &&
               out_.size() == static_cast<uint64_t>(f.content_length)) {
        // The whole body is already here (the common small response): a buffer response
        // lets libmicrohttpd send head and body in one system call.
        r = MHD_create_response_from_buffer(out_.size(), const_cast<char *>(out_.data()), MHD_RESPMEM_MUST_COPY);
        if (r != nullptr) out_.clear();
    } else {
        // Streamed through the content reader: a fixed length, or chunked (HTTP/1.1) or
        // close-delimited (HTTP/1.0) for MHD_SIZE_UNKNOWN, as libmicrohttpd decides from the
        // request version the same way the core did.
        uint64_t size = f.framing == core::Framing::length ? static_cast<uint64_t>(f.content_length) : MHD_SIZE_UNKNOWN;
        r = MHD_create_response_from_callback(size, kBlock, &content_reader, this, &content_reader_free);
        callback = true;
    }
    if (r == nullptr) return nullptr;
    if (callback) ref(); // released by content_reader_free when libmicrohttpd drops the response
    if (length_free) MHD_set_response_options(r, MHD_RF_HTTP_1_0_COMPATIBLE_STRICT, MHD_RO_END);
    for (const core::Field &h : head_.headers) {
        // libmicrohttpd writes Content-Length from the response size and refuses one from us.
        if (core::iequals(h.name, "content-length")) continue;
        // It also refuses empty values; a single space is the same field once the client
        // strips the optional whitespace (RFC 9110 section 5.5). The core's views are
        // NUL-terminated (ResponseHead).
        const char *value = h.value.empty() ? " " : h.value.data();
        if (MHD_add_response_header(r, h.name.data(), value) != MHD_YES) {
            srv_.ctx().log().warning(fmt::format("{}: libmicrohttpd dropped response header '{}'",
                                                 target_.substr(0, 200), h.name.substr(0, 64)));
        }
    }
    return r;
}

ssize_t Bridge::content_reader(void *cls, uint64_t, char *buf, size_t max)
{
    return static_cast<Bridge *>(cls)->on_read_response(buf, max);
}

void Bridge::content_reader_free(void *cls) { static_cast<Bridge *>(cls)->unref(); }

ssize_t Bridge::on_read_response(char *buf, size_t max)
{
    task_.run_pending();
    ssize_t n = read_response_step(buf, max);
    task_.run_pending(); // a writer waiting for room writes the next piece now
    return n;
}

ssize_t Bridge::read_response_step(char *buf, size_t max)
{
    std::lock_guard<core::FutexMutex> lk(mu_);
    if (peer_gone_ || stopping_) return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = out_.pop(buf, max);
    if (n > 0) {
        task_.notify();
        return static_cast<ssize_t>(n);
    }
    // RESP-ERR-2: after the bytes the app wrote, an aborted response ends without its proper
    // end: libmicrohttpd closes the connection without the terminal chunk, or short of the
    // Content-Length.
    if (aborted_) return MHD_CONTENT_READER_END_WITH_ERROR;
    if (ended_) return MHD_CONTENT_READER_END_OF_STREAM;
    // Nothing yet: park the connection until the app writes (returning 0 while suspended
    // is the documented way; libmicrohttpd calls again after the resume).
    return suspend_locked(Wait::output) ? 0 : MHD_CONTENT_READER_END_WITH_ERROR;
}

bool Bridge::suspend_locked(Wait why)
{
    if (stopping_ || srv_.hard_stopping() || conn_ == nullptr) return false;
    MHD_suspend_connection(conn_);
    suspended_ = true;
    wait_ = why;
    // A writer blocked on a full FIFO may now be waiting for a body nobody reads.
    if (why == Wait::input_room) task_.notify();
    return true;
}

void Bridge::resume_locked()
{
    if (!suspended_ || conn_ == nullptr) return;
    suspended_ = false;
    wait_ = Wait::none;
    MHD_resume_connection(conn_);
}

void Bridge::wake_locked(unsigned events)
{
    if (!suspended_) return;
    bool go = false;
    if (events & kApp) {
        resume_locked(); // the app side must run, whatever the connection waited for
        return;
    }
    switch (wait_) {
    case Wait::none: break;
    case Wait::held: go = (events & (kWantBody | kEnd)) || (committed_ && (events & kOutput)); break;
    case Wait::response:
    case Wait::output: go = (events & (kOutput | kEnd)) != 0; break;
    case Wait::input_room: go = (events & (kInputRoom | kEnd)) != 0; break;
    }
    if (go) resume_locked();
}

void Bridge::on_completed(MHD_RequestTerminationCode toe)
{
    int32_t outcome = CWSGI_OK;
    bool stopped = false; // closed by the graceful deadline (force_stop), not by the client
    {
        std::lock_guard<core::FutexMutex> lk(mu_);
        stopped = stopping_;
        // A body still arriving when the connection ended was cut short (INPUT-READ-4).
        const bool body_open = (phase_ == Phase::body || phase_ == Phase::held) && has_body_ && !in_eof_ && !draining_;
        switch (toe) {
        case MHD_REQUEST_TERMINATED_COMPLETED_OK: break;
        case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
            // Only a head or body that stalled can time out: suspended connections do not.
            // libmicrohttpd would just close; answer 408 first (LIMIT-5, INPUT-READ-4).
            if (!queued_) answer_timeout_locked();
            disconnected_ = true;
            if (body_open) read_error_ = CWSGI_E_TIMEOUT;
            outcome = CWSGI_E_DISCONNECTED;
            break;
        case MHD_REQUEST_TERMINATED_WITH_ERROR:
            if (aborted_) {
                outcome = CWSGI_E_IO; // we cut it (RESP-ERR-2)
            } else if (!queued_ && body_open) {
                // libmicrohttpd found the body malformed (a bad chunk) and answered 400 itself.
                read_error_ = CWSGI_E_BODY;
                outcome = CWSGI_E_IO;
            } else {
                disconnected_ = true; // sending failed: the peer is gone
                outcome = CWSGI_E_DISCONNECTED;
            }
            break;
        case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
        case MHD_REQUEST_TERMINATED_READ_ERROR:
            disconnected_ = true;
            if (body_open) read_error_ = CWSGI_E_BODY;
            outcome = CWSGI_E_DISCONNECTED;
            break;
        default: // daemon shutdown
            disconnected_ = true;
            outcome = CWSGI_E_DISCONNECTED;
            break;
        }
        if (peer_gone_) {
            disconnected_ = true;
            outcome = CWSGI_E_DISCONNECTED;
        }
        if (read_error_ == 0) read_error_ = CWSGI_E_DISCONNECTED;
        completed_ = true;
        conn_ = nullptr;
        conn_info_ = nullptr; // libmicrohttpd frees it with the connection, maybe before us
        suspended_ = false;
        wait_ = Wait::none;
        task_.notify();
    }
    srv_.live().remove(this);
    if (!req_) return; // refused before the app, or libmicrohttpd answered the head itself
    // A fiber waiting on this connection learns that it is gone, and may finish here. Nothing
    // of libmicrohttpd calls this request back from now on, so its waits end now too.
    task_.orphan(stopped ? CWSGI_E_SHUTDOWN : CWSGI_E_DISCONNECTED); // LIFE-STOP-5
    task_.run_pending();
    if (app_done_.load(std::memory_order_acquire) && srv_.app_has_request_end()) {
        // The app is done, so this completion would run on_request_end here, on the loop's
        // stack: run it in the app's context instead (THR-9).
        ref(); // the completion job's reference, dropped by hook_done
        task_.start(&Bridge::job_complete, this, outcome);
    } else {
        // Either there is no app callback to run (only the access log), or the app is still
        // in handle() and its run() ends the request when it returns.
        req_->complete(outcome);
    }
}

void Bridge::answer_timeout_locked()
{
    // libmicrohttpd reports the timeout before it shuts the socket down, and sends nothing
    // itself at this point (a stalled head or body), so the 408 can go out directly.
    const int fd = conn_info_ != nullptr ? conn_info_->fd : -1;
    if (fd < 0) return;
    std::string wire;
    http1::write_error(wire, 1, 408); // H1-WRITE-4: the same bytes as every adapter's 408
    ssize_t n = ::send(fd, wire.data(), wire.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n; // best effort: the connection closes right after either way
    const char *what = phase_ == Phase::fresh ? "head" : "body";
    srv_.ctx().log().info(fmt::format("408 for a stalled request {} from {} ({} {})", what,
                                      conn_info_->remote_addr.empty() ? "?" : conn_info_->remote_addr,
                                      req_ ? req_->head().method : "", target_.substr(0, 200)));
}

// ---------------------------------------------------------------------------------------------
// App pool side

void Bridge::job_run(void *self, int32_t)
{
    auto *b = static_cast<Bridge *>(self);
    b->req_->run();
    b->app_done_.store(true, std::memory_order_release);
}

void Bridge::job_complete(void *self, int32_t outcome) { static_cast<Bridge *>(self)->req_->complete(outcome); }

void Bridge::hook_wake(void *self)
{
    auto *b = static_cast<Bridge *>(self);
    std::lock_guard<core::FutexMutex> lk(b->mu_);
    b->wake_locked(kApp);
}

void Bridge::hook_done(void *self) { static_cast<Bridge *>(self)->unref(); }
void Bridge::hook_hold(void *self) { static_cast<Bridge *>(self)->ref(); }
void Bridge::hook_release(void *self) { static_cast<Bridge *>(self)->unref(); }

void Bridge::hook_describe(void *self, exec::DescribeBuf &out)
{
    // From the stack-overflow handler: plain reads of what the Bridge set before the app ran.
    auto *b = static_cast<Bridge *>(self);
    if (!b->req_) {
        out.put("a request being set up");
        return;
    }
    out.put("request ");
    out.put(b->req_->id());
    out.put(" ");
    out.put(std::string_view(b->req_->head().method).substr(0, 32));
    out.put(" ");
    out.put(std::string_view(b->target_).substr(0, 200));
}

void Bridge::force_stop()
{
    hook_hold(this); // released by notify_from_any_thread
    {
        std::lock_guard<core::FutexMutex> lk(mu_);
        stopping_ = true;
        task_.notify();
        resume_locked();
    }
    // Cooperative mode: the request's own loop thread resumes the fiber (LIFE-STOP-5).
    task_.notify_from_any_thread();
}

// ---------------------------------------------------------------------------------------------
// core::Exchange, on the app thread

void Bridge::continue_body()
{
    std::lock_guard<core::FutexMutex> lk(mu_);
    if (!want_body_) {
        want_body_ = true;
        wake_locked(kWantBody);
    }
}

int64_t Bridge::read_body(void *buf, size_t cap)
{
    std::unique_lock<core::FutexMutex> lk(mu_);
    if (!want_body_) {
        want_body_ = true;
        wake_locked(kWantBody);
    }
    task_.wait(lk,
               [&] { return !in_.empty() || in_eof_ || read_error_ != 0 || completed_ || peer_gone_ || stopping_; });
    if (!in_.empty()) {
        size_t n = in_.pop(buf, cap);
        // Resume the upload once half the FIFO is free, not on every byte.
        if (in_.space(kInCap) >= kInCap / 2) wake_locked(kInputRoom);
        return static_cast<int64_t>(n);
    }
    if (in_eof_) return 0;
    if (read_error_ != 0) return read_error_;
    if (stopping_ && !completed_ && !peer_gone_) return CWSGI_E_SHUTDOWN; // LIFE-STOP-5
    return CWSGI_E_DISCONNECTED;
}

const std::vector<core::Header> *Bridge::request_trailers()
{
    std::lock_guard<core::FutexMutex> lk(mu_);
    return in_eof_ ? &trailers_ : nullptr;
}

int32_t Bridge::commit(const core::ResponseHead &head)
{
    std::lock_guard<core::FutexMutex> lk(mu_);
    if (completed_ || peer_gone_) return CWSGI_E_DISCONNECTED;
    // Nothing goes to libmicrohttpd yet: the body bytes that follow (the core commits right
    // before the first one, or at finish) let the Bridge pick the cheapest response kind.
    head_ = head;
    committed_ = true;
    return CWSGI_OK;
}

bool Bridge::write_deadlocked_locked() const
{
    // The response cannot be queued before the whole body is in, the app is here writing
    // instead of reading, and the body FIFO is full: nothing can move any more.
    return !queued_ && phase_ == Phase::body && !in_eof_ && !draining_ && suspended_ && wait_ == Wait::input_room;
}

int32_t Bridge::send_body(const void *data, size_t len)
{
    std::unique_lock<core::FutexMutex> lk(mu_);
    if (len == 0) {
        // A zero-length write still puts the head on the wire.
        flush_ = true;
        wake_locked(kOutput);
        return completed_ || peer_gone_ ? CWSGI_E_DISCONNECTED : CWSGI_OK;
    }
    const char *p = static_cast<const char *>(data);
    for (;;) {
        if (completed_ || peer_gone_) return CWSGI_E_DISCONNECTED;
        if (stopping_) return CWSGI_E_SHUTDOWN; // LIFE-STOP-5
        size_t n = out_.push(p, len, queued_ ? kOutCap : kOutCapEarly);
        if (n > 0) {
            p += n;
            len -= n;
            wake_locked(kOutput);
            if (len == 0) return CWSGI_OK;
            continue;
        }
        if (write_deadlocked_locked()) {
            if (!deadlock_logged_) {
                deadlock_logged_ = true;
                srv_.ctx().log().warning(
                    fmt::format("{}: the app wrote more than {} KiB of response before reading the request body to its "
                                "end; libmicrohttpd cannot start a response before the whole request arrived",
                                target_.substr(0, 200), kOutCapEarly / 1024));
            }
            return CWSGI_E_IO;
        }
        task_.wait_once(lk);
    }
}

int32_t Bridge::send_file(int fd, int64_t offset, int64_t count)
{
    std::lock_guard<core::FutexMutex> lk(mu_);
    if (completed_ || peer_gone_) return CWSGI_E_DISCONNECTED;
    // Zero-copy only when this file range is the whole body (the core enforces the length,
    // so nothing can follow it) and nothing went out before it; otherwise the core's read
    // loop sends the same bytes through send_body.
    const core::FramingDecision &f = head_.framing;
    if (!committed_ || f.framing != core::Framing::length || count != f.content_length || count <= 0 || queued_ ||
        !out_.empty() || file_fd_ >= 0) {
        return CWSGI_E_UNSUPPORTED;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return CWSGI_E_UNSUPPORTED;
    int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) return CWSGI_E_UNSUPPORTED;
    file_fd_ = copy;
    file_offset_ = offset;
    file_count_ = count;
    wake_locked(kOutput);
    return CWSGI_OK;
}

int32_t Bridge::end_body()
{
    std::lock_guard<core::FutexMutex> lk(mu_);
    ended_ = true;
    if (phase_ == Phase::body && !in_eof_ && !draining_) {
        // The app is done but the body is not: read and drop the rest, so that the response
        // can be queued (libmicrohttpd answers only once the whole request is in).
        draining_ = true;
        drain_until_ = std::chrono::steady_clock::now() + kLingerTime;
        in_.clear();
    }
    wake_locked(kEnd);
    return peer_gone_ || (completed_ && disconnected_) ? CWSGI_E_DISCONNECTED : CWSGI_OK;
}

void Bridge::abort_body()
{
    std::lock_guard<core::FutexMutex> lk(mu_);
    aborted_ = true;
    wake_locked(kEnd);
}

bool Bridge::disconnected() const
{
    if (disconnected_.load(std::memory_order_acquire)) return true;
    // Probing records what it finds and wakes the event loop, so it needs the mutable Bridge;
    // the interface is const because callers only ask.
    auto *self = const_cast<Bridge *>(this);
    std::lock_guard<core::FutexMutex> lk(self->mu_);
    return self->peer_gone_locked();
}

bool Bridge::body_cut_by_peer_locked()
{
    // libmicrohttpd 0.9.75 reads with edge-triggered epoll and takes a short read for "the
    // socket is drained": when the client's FIN came in with the last body bytes it sees no
    // further event and waits for the rest of the body until --client-timeout. So once it has
    // handed over everything it read of a body that is not complete, look at the socket: nothing
    // left but the end of the stream means the body was cut (INPUT-READ-4). Only for a
    // Content-Length body: libmicrohttpd hands a chunked body over one chunk at a time, so
    // later chunks (the terminating one included) may still sit in its buffer, and a client
    // that sent its whole request and then shut down its side must not see its body refused.
    if (fd_ < 0 || content_length_ < 0 || received_ >= static_cast<uint64_t>(content_length_)) return false;
    char c;
    if (::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT) != 0) return false;
    srv_.ctx().log().debug(
        fmt::format("{}: the client closed its side after {} body bytes", target_.substr(0, 200), received_));
    read_error_ = CWSGI_E_BODY;
    task_.notify();
    return true;
}

bool Bridge::response_sent() const { return sent_.load(std::memory_order_acquire); }

int32_t Bridge::wait_fd(int fd, uint32_t events, int32_t timeout_ms)
{
    // The connection needs nothing from the app meanwhile: the execution layer polls on the
    // app thread, or parks the fiber until its watcher wakes this request (hook_wake).
    return task_.wait_fd(fd, events, timeout_ms);
}

bool Bridge::peer_gone_locked()
{
    if (completed_ || peer_gone_) return disconnected_;
    // While the connection is suspended libmicrohttpd does not watch the socket, so look at it
    // here: end-of-stream or an error with nothing left to read means the client went away
    // (a client that only half-closed looks the same; HTTP/1.1 gives it no reason to).
    // When not suspended, libmicrohttpd reads or writes the socket and reports a dead peer
    // through the completion notification.
    if (!suspended_ || fd_ < 0) return false;
    char c;
    ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    bool gone = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    if (!gone) return false;
    peer_gone_ = true;
    disconnected_ = true;
    task_.notify();
    resume_locked(); // libmicrohttpd then closes the connection and reports the end
    return true;
}

} // namespace cwsgi::adapters::mhd
