// stream.cc: one request between a libh2o loop and the app (see stream.hh).
//
// Lock order: Stream::mu_ -> libh2o's queue mutex (h2o_multithread_send_message). libh2o is only
// called on the loop thread, never with mu_ held when the call could come back into the
// Stream, and the core's Request is only called without mu_ held.
#include "stream.hh"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "core/context.hh"
#include "errors.hh"
#include "head.hh"
#include "server.hh"

namespace cwsgi::adapters::h2o {

namespace {

/// Response bytes the app may have queued beyond the buffer in flight (its write blocks past
/// this): with the one in flight, at most twice this per request.
constexpr size_t kOutCap = 64 * 1024;

h2o_iovec_t iov(std::string_view s) { return h2o_iovec_t{const_cast<char *>(s.data()), s.size()}; }

/// Never called: the refused answer is sent whole at once. Its address marks the generator as
/// the adapter's (is_adapter_generator).
void refused_proceed(h2o_generator_t *, h2o_req_t *) {}
h2o_generator_t kRefusedGenerator = {&refused_proceed, nullptr};

/// Puts a head the core refused on the wire, as make_error_response says, and closes (HTTP/1).
void answer_refused(h2o_req_t *req, uint32_t status, bool head_request)
{
    core::ErrorResponse err = core::make_error_response(status);
    req->res.status = static_cast<int>(status);
    char *reason = static_cast<char *>(h2o_mem_alloc_pool(&req->pool, err.reason.size() + 1));
    std::memcpy(reason, err.reason.c_str(), err.reason.size() + 1);
    req->res.reason = reason;
    req->http1_is_persistent = 0;
    for (const core::Header &h : err.headers) {
        if (core::iequals(h.name, "connection")) continue; // libh2o writes it from the flag above
        h2o_iovec_t v = h2o_strdup(&req->pool, h.value.data(), h.value.size());
        h2o_iovec_t n = h2o_strdup(&req->pool, h.name.data(), h.name.size());
        add_response_header(req, std::string_view(n.base, n.len), std::string_view(v.base, v.len));
    }
    h2o_start_response(req, &kRefusedGenerator);
    h2o_iovec_t body = h2o_strdup(&req->pool, err.body.data(), err.body.size());
    if (head_request) {
        h2o_send(req, nullptr, 0, H2O_SEND_STATE_FINAL);
    } else {
        h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
    }
}

} // namespace

void add_response_header(h2o_req_t *req, std::string_view name, std::string_view value)
{
    // Lowercased on the stack first: a token (the common case) needs no copy at all.
    char small[64];
    const size_t n = name.size();
    char *lower = n <= sizeof small ? small : static_cast<char *>(h2o_mem_alloc_pool(&req->pool, n));
    core::copy_lower(lower, name);
    h2o_iovec_t *name_buf;
    if (const h2o_token_t *token = h2o_lookup_token(lower, n)) {
        name_buf = const_cast<h2o_iovec_t *>(&token->buf); // libh2o's own cast (lib/core/headers.c)
    } else {
        if (lower == small) lower = static_cast<char *>(std::memcpy(h2o_mem_alloc_pool(&req->pool, n), small, n));
        name_buf = static_cast<h2o_iovec_t *>(h2o_mem_alloc_pool(&req->pool, sizeof(h2o_iovec_t)));
        *name_buf = h2o_iovec_t{lower, n};
    }
    h2o_vector_reserve(&req->pool, &req->res.headers, req->res.headers.size + 1);
    h2o_header_t &slot = req->res.headers.entries[req->res.headers.size++];
    slot.name = name_buf;
    slot.orig_name = req->version < 0x200 ? name.data() : nullptr;
    slot.value = iov(value);
}

bool is_adapter_generator(const h2o_generator_t *gen)
{
    return gen != nullptr && (gen->proceed == &Stream::on_proceed || gen->proceed == &refused_proceed);
}

const exec::Task::Hooks Stream::kTaskHooks = {&Stream::hook_wake, &Stream::hook_done, &Stream::hook_hold,
                                              &Stream::hook_release, &Stream::hook_describe};

// One pooled block per request (BlockAllocated): a Stream that outgrew it would fall back to the
// heap on every request, unnoticed but for the allocation count.
static_assert(sizeof(Stream) <= core::Arena::kBlockSize, "Stream no longer fits an arena block");

Stream::Stream(Loop &loop, h2o_req_t *req)
    : loop_(loop), req_(req), task_(loop.server().executor(), kTaskHooks, this), out_(kOutCap)
{
    gen_.super.proceed = &Stream::on_proceed;
    gen_.super.stop = &Stream::on_stop;
    gen_.self = this;
    msg_.self = this;
    write_timer_.super.cb = &Stream::on_write_timeout;
    write_timer_.self = this;
    http2_ = req->version >= 0x200;
}

Stream::~Stream() = default;

void Stream::unref()
{
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::unique_ptr<Stream> self(this); // the last reference frees it (STYLE: no raw delete)
    }
}

// ---------------------------------------------------------------------------------------------
// The loop thread

void Stream::handle(Loop &loop, h2o_req_t *req)
{
    Server &srv = loop.server();
    core::Context &ctx = srv.ctx();
    if (req->version >= 0x200) {
        // A stream of a connection closed for abuse never reaches the app; libh2o disposes it
        // with its connection.
        if (loop.h2_refused(req->conn)) return;
    }
    core::RequestHead head;
    const char *why = build_head(req, loop.addresses(), head);
    // Built in place (a HeadCheck is some twenty fields): no default one overwritten.
    core::HeadCheck check = why == nullptr ? core::validate_request_head(head, ctx.config().limits) : core::HeadCheck{};
    if (why != nullptr) {
        check.status = 400;
        check.reason = why;
        check.rule = "REQ-LINE-1";
    }
    if (check.status != 0) {
        // REQ-REPLY-1: the server's own answer; the app is never called.
        answer_refused(req, check.status, head.method == "HEAD");
        core::log_rejected(ctx, head, check, 0);
        return;
    }

    std::unique_ptr<Stream> s(new Stream(loop, req));
    s->target_.assign(head.target.substr(0, 200));
    if (req->entity.base != nullptr) {
        s->body_ = req->entity.base;
        s->body_len_ = req->entity.len;
    }
    if (!s->http2_) {
        h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
        if (sock != nullptr) {
            s->fd_ = h2o_socket_get_fd(sock);
            s->tls_ = sock->ssl != nullptr;
        }
    }
    s->creq_ = core::Request::create(ctx, std::move(head), check, *s);
    if (!s->creq_ || !s->task_.prepare()) {
        h2o_send_error_generic(req, 500, "Internal Server Error", "500 Internal Server Error\n",
                               H2O_SEND_ERROR_HTTP1_CLOSE_CONNECTION);
        return;
    }
    // The end of the request, on every path: libh2o disposes the pool exactly once.
    auto *link = static_cast<PoolLink *>(h2o_mem_alloc_shared(&req->pool, sizeof(PoolLink), &Stream::on_pool_dispose));
    link->self = s.get();
    Stream *self = s.release(); // libh2o's reference, dropped in on_pool_dispose
    srv.live().add(self);
    self->ref(); // the run job's, dropped by hook_done
    self->task_.start(&Stream::job_run, self);
    self->flush();
}

void Stream::step()
{
    task_.run_pending();
    flush();
}

void Stream::on_message()
{
    {
        std::lock_guard<core::FutexMutex> lk(mu_);
        posted_ = false;
    }
    step();
    unref(); // the message's reference
}

void Stream::on_proceed(h2o_generator_t *gen, h2o_req_t *)
{
    Stream *s = reinterpret_cast<GeneratorLink *>(gen)->self;
    {
        std::lock_guard<core::FutexMutex> lk(s->mu_);
        s->sending_ = false;
        s->inflight_.clear();
        if (h2o_timeout_is_linked(&s->write_timer_.super)) h2o_timeout_unlink(&s->write_timer_.super);
        s->task_.notify(); // a writer waiting for room may go on
    }
    s->step();
}

void Stream::on_stop(h2o_generator_t *gen, h2o_req_t *)
{
    // libh2o ends a response it will not finish (the client is gone, the stream was reset);
    // the pool's dispose callback follows at once and does the rest.
    Stream *s = reinterpret_cast<GeneratorLink *>(gen)->self;
    s->gone_.store(true, std::memory_order_release);
}

void Stream::on_pool_dispose(void *link) { static_cast<PoolLink *>(link)->self->on_disposed(); }

void Stream::on_disposed()
{
    int32_t outcome = CWSGI_OK;
    bool stopped = false;
    {
        std::lock_guard<core::FutexMutex> lk(mu_);
        stopped = stopping_;
        if (aborted_) {
            outcome = CWSGI_E_IO; // we cut it (RESP-ERR-2)
        } else if (!final_sent_) {
            outcome = CWSGI_E_DISCONNECTED;
            gone_.store(true, std::memory_order_release);
        }
        if (h2o_timeout_is_linked(&write_timer_.super)) h2o_timeout_unlink(&write_timer_.super);
        if (http2_ && req_ != nullptr) loop_.note_h2_stream_end(req_->conn, !final_sent_ && !aborted_);
        req_ = nullptr; // libh2o frees or reuses it now
        body_ = nullptr;
        fd_ = -1;
        sending_ = false;
        task_.notify();
    }
    loop_.server().live().remove(this);
    // Nothing of libh2o calls this request back any more: waits in progress end now, and a
    // fiber may finish here (LIFE-DISC-1, LIFE-STOP-5).
    task_.orphan(stopped ? CWSGI_E_SHUTDOWN : CWSGI_E_DISCONNECTED);
    task_.run_pending();
    if (app_done_.load(std::memory_order_acquire) && loop_.server().app_has_request_end()) {
        // Run on_request_end in the app's context, not on the loop's stack (THR-9).
        ref(); // the completion job's, dropped by hook_done
        task_.start(&Stream::job_complete, this, outcome);
    } else {
        creq_->complete(outcome);
    }
    unref(); // libh2o's reference
}

void Stream::start_response_locked()
{
    h2o_req_t *req = req_;
    const core::ResponseHead &h = head_;
    req->res.status = static_cast<int>(h.status);
    req->res.reason = h.reason.data(); // NUL-terminated, lives in the request's arena
    if (!h.framing.keep_alive) req->http1_is_persistent = 0;
    // Room for every header at once (and Transfer-Encoding), rather than libh2o's growth one
    // header at a time.
    h2o_vector_reserve(&req->pool, &req->res.headers, req->res.headers.size + h.headers.size() + 1);
    for (const core::Field &f : h.headers) {
        // libh2o writes Connection itself for HTTP/1 (from http1_is_persistent) and HTTP/2
        // has none; everything else goes as the core decided.
        if (core::iequals(f.name, "connection")) continue;
        add_response_header(req, f.name, f.value);
    }
    if (h.framing.framing == core::Framing::chunked) {
        // The adapter frames chunks itself (libh2o's chunked filter is removed: it would
        // close instead for any status but 200).
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_TRANSFER_ENCODING, "Transfer-Encoding",
                       H2O_STRLIT("chunked"));
    }
    h2o_start_response(req, &gen_.super);
    started_ = true;
}

void Stream::flush()
{
    std::unique_lock<core::FutexMutex> lk(mu_);
    if (req_ == nullptr || final_sent_ || sending_) return;
    if (!committed_) return;
    const bool chunked = head_.framing.framing == core::Framing::chunked;
    const bool finishing = (ended_ || aborted_) && !stopping_;
    const bool cut = aborted_ || stopping_;
    if (out_.empty() && !finishing && !cut && !(flush_head_ && !started_)) return;
    if (!started_) start_response_locked();
    flush_head_ = false;

    inflight_.clear();
    if (!out_.empty()) {
        if (chunked) {
            char size[24];
            int n = std::snprintf(size, sizeof size, "%zx\r\n", out_.size());
            inflight_.append(size, static_cast<size_t>(n));
        }
        inflight_.append(out_.data(), out_.size());
        if (chunked) inflight_.append("\r\n");
        out_.clear();
        task_.notify(); // room for the writer again
    }
    h2o_send_state_t state = H2O_SEND_STATE_IN_PROGRESS;
    if (cut) {
        state = H2O_SEND_STATE_ERROR; // RESP-ERR-2: no last chunk, short body, or RST_STREAM
    } else if (finishing) {
        if (chunked) inflight_.append("0\r\n\r\n");
        state = H2O_SEND_STATE_FINAL;
    }
    if (state != H2O_SEND_STATE_IN_PROGRESS) final_sent_ = true;
    sending_ = state == H2O_SEND_STATE_IN_PROGRESS;
    if (sending_ && !h2o_timeout_is_linked(&write_timer_.super)) {
        h2o_timeout_link(loop_.context().loop, &loop_.write_timeout(), &write_timer_.super);
    }
    h2o_req_t *req = req_;
    h2o_iovec_t buf = iov(inflight_);
    const size_t count = inflight_.empty() ? 0 : 1;
    // With the head not yet sent an empty IN_PROGRESS send writes the head alone; after it,
    // libh2o's HTTP/1 writer would take an empty send for the end, so flush never makes one.
    lk.unlock();
    h2o_send(req, count != 0 ? &buf : nullptr, count, state);
}

void Stream::on_write_timeout(h2o_timeout_entry_t *entry)
{
    // LIFE-DISC-2: the client has read nothing of the response for --client-timeout. libh2o
    // 2.2.5 has no write timeout of its own; the app's write must not stay blocked.
    Stream *s = reinterpret_cast<TimeoutLink *>(entry)->self;
    s->loop_.server().ctx().log().info(fmt::format("{}: the client read nothing for {} ms; closing", s->target_,
                                                   s->loop_.server().ctx().config().client_timeout_ms));
    {
        std::lock_guard<core::FutexMutex> lk(s->mu_);
        s->gone_.store(true, std::memory_order_release);
        // HTTP/1: cut the connection, libh2o then disposes the request. HTTP/2: the other
        // streams of the connection go on; this one ends when the client resets or leaves.
        if (s->fd_ >= 0) ::shutdown(s->fd_, SHUT_RDWR);
        s->task_.notify();
    }
    s->step();
}

void Stream::kick_locked()
{
    // Cooperative mode: the app runs on this loop's thread, inside step(), which flushes as
    // soon as the fiber yields.
    if (loop_.server().executor().cooperative()) return;
    if (posted_) return;
    posted_ = true;
    post_message();
}

void Stream::post_message()
{
    ref(); // the message's, dropped by on_message
    h2o_multithread_send_message(loop_.receiver(), &msg_.super);
}

void Stream::force_stop()
{
    hook_hold(this); // released by notify_from_any_thread
    {
        std::lock_guard<core::FutexMutex> lk(mu_);
        stopping_ = true;
        task_.notify();
        if (!posted_) {
            posted_ = true;
            post_message();
        }
    }
    task_.notify_from_any_thread();
}

// ---------------------------------------------------------------------------------------------
// The execution layer's jobs and hooks

void Stream::job_run(void *self, int32_t)
{
    auto *s = static_cast<Stream *>(self);
    s->creq_->run();
    s->app_done_.store(true, std::memory_order_release);
}

void Stream::job_complete(void *self, int32_t outcome) { static_cast<Stream *>(self)->creq_->complete(outcome); }

void Stream::hook_wake(void *self)
{
    // Another thread made the fiber runnable (its wait_fd, the SERIAL turn, the deadline):
    // the loop runs it when the message arrives.
    auto *s = static_cast<Stream *>(self);
    std::lock_guard<core::FutexMutex> lk(s->mu_);
    if (!s->posted_) {
        s->posted_ = true;
        s->post_message();
    }
}

void Stream::hook_done(void *self) { static_cast<Stream *>(self)->unref(); }
void Stream::hook_hold(void *self) { static_cast<Stream *>(self)->ref(); }
void Stream::hook_release(void *self) { static_cast<Stream *>(self)->unref(); }

void Stream::hook_describe(void *self, exec::DescribeBuf &out)
{
    auto *s = static_cast<Stream *>(self);
    if (!s->creq_) {
        out.put("a request being set up");
        return;
    }
    out.put("request ");
    out.put(s->creq_->id());
    out.put(" ");
    out.put(std::string_view(s->creq_->head().method).substr(0, 32));
    out.put(" ");
    out.put(std::string_view(s->target_));
}

// ---------------------------------------------------------------------------------------------
// core::Exchange, in the app's context

int64_t Stream::read_body(void *buf, size_t cap)
{
    // libh2o 2.2.5 buffered the whole body before the handler: nothing to wait for.
    std::lock_guard<core::FutexMutex> lk(mu_);
    if (stopping_) return CWSGI_E_SHUTDOWN;
    if (body_pos_ >= body_len_) return 0;
    if (body_ == nullptr) return CWSGI_E_DISCONNECTED;
    size_t n = std::min(cap, body_len_ - body_pos_);
    std::memcpy(buf, body_ + body_pos_, n);
    body_pos_ += n;
    return static_cast<int64_t>(n);
}

int32_t Stream::commit(const core::ResponseHead &head)
{
    std::lock_guard<core::FutexMutex> lk(mu_);
    if (gone_.load(std::memory_order_acquire)) return CWSGI_E_DISCONNECTED;
    head_ = head;
    committed_ = true;
    // No kick: the core commits right before the first body byte or at the end, and both kick.
    return CWSGI_OK;
}

int32_t Stream::send_body(const void *data, size_t len)
{
    std::unique_lock<core::FutexMutex> lk(mu_);
    if (len == 0) {
        flush_head_ = true; // a zero-length write still puts the head on the wire
        kick_locked();
        return gone_.load(std::memory_order_acquire) ? CWSGI_E_DISCONNECTED : CWSGI_OK;
    }
    const char *p = static_cast<const char *>(data);
    for (;;) {
        if (gone_.load(std::memory_order_acquire) || req_ == nullptr) return CWSGI_E_DISCONNECTED;
        if (stopping_) return CWSGI_E_SHUTDOWN; // LIFE-STOP-5
        size_t n = out_.push(p, len, kOutCap);
        if (n > 0) {
            p += n;
            len -= n;
            kick_locked();
            if (len == 0) return CWSGI_OK;
            continue;
        }
        task_.wait_once(lk); // RESP-BODY-2: until proceed drained the buffer in flight
    }
}

int32_t Stream::end_body()
{
    std::lock_guard<core::FutexMutex> lk(mu_);
    ended_ = true;
    kick_locked();
    return gone_.load(std::memory_order_acquire) ? CWSGI_E_DISCONNECTED : CWSGI_OK;
}

void Stream::abort_body()
{
    std::lock_guard<core::FutexMutex> lk(mu_);
    aborted_ = true;
    kick_locked();
}

bool Stream::disconnected() const
{
    if (gone_.load(std::memory_order_acquire)) return true;
    // HTTP/1: libh2o does not read while the handler runs, so a client that left shows only
    // on the next write; look at the socket instead (end of stream or an error with nothing
    // to read). The descriptor stays open until after the dispose callback cleared fd_.
    std::lock_guard<core::FutexMutex> lk(mu_);
    if (fd_ < 0) return gone_.load(std::memory_order_acquire);
    bool gone;
    if (tls_) {
        // Over TLS a leaving client sends a close_notify record before its FIN, so the socket
        // holds bytes and the peek below would say "still there": ask for the FIN itself.
        pollfd p{fd_, POLLRDHUP, 0};
        gone = ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
    } else {
        char c;
        ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        gone = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    }
    if (gone) gone_.store(true, std::memory_order_release);
    return gone;
}

int32_t Stream::wait_fd(int fd, uint32_t events, int32_t timeout_ms) { return task_.wait_fd(fd, events, timeout_ms); }

bool Stream::response_sent() const
{
    std::lock_guard<core::FutexMutex> lk(mu_);
    return started_;
}

} // namespace cwsgi::adapters::h2o
