// conn.cc: one connection of the forking adapter and the Exchange of its request (see conn.hh).
//
// Lock order: Conn::mu_ -> Server's kick mutex. The core's Request and the Task's start and
// run_pending are only called without mu_ held (the app side takes it).
#include "conn.hh"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/context.hh"
#include "http1/writer.hh"
#include "server.hh"

namespace cwsgi::adapters::forking {

namespace {

/// Decoded request-body bytes held for the app (decoding pauses past this).
constexpr size_t kInCap = 64 * 1024;
/// Response bytes the app may queue (its write blocks past this).
constexpr size_t kOutCap = 64 * 1024;
/// Framed bytes waiting for the socket before the loop takes more from the app.
constexpr size_t kWireCap = 64 * 1024;
/// Bytes read per read(2) call.
constexpr size_t kReadChunk = 16 * 1024;
/// Undecoded bytes held while a request runs (the body's next part, pipelined requests): the
/// socket is not read past this, so a fast client meets TCP's backpressure.
constexpr size_t kReadCap = 64 * 1024;
/// File bytes per sendfile(2) call, so one large file does not hold the loop.
constexpr size_t kFileStep = 1024 * 1024;
/// The lingering close after the last answer (nginx's lingering_close): the server stops
/// writing, then reads and drops what the client still sends, so that closing with unread
/// bytes does not reset the connection and destroy the answer before the client read it.
/// Bounded in time, in quiet time and in bytes.
constexpr auto kLingerTime = std::chrono::seconds(5);
constexpr auto kLingerQuiet = std::chrono::seconds(1);
constexpr uint64_t kLingerBytes = uint64_t{64} << 20;

std::chrono::milliseconds ms(uint32_t v) { return std::chrono::milliseconds(std::max<uint32_t>(v, 1)); }

} // namespace

const exec::Task::Hooks Conn::kTaskHooks = {&Conn::hook_wake,    &Conn::hook_done,     &Conn::hook_hold,
                                            &Conn::hook_release, &Conn::hook_describe, &Conn::hook_block};

Conn::Conn(Server &server, int fd, Peer peer)
    : srv_(server), fd_(fd), peer_(std::move(peer)), parser_(server.config().limits),
      task_(server.executor(), kTaskHooks, this), in_(kInCap), out_(kOutCap)
{
    // A new connection gets --client-timeout for its first byte; later requests get
    // --keep-alive (finish_request).
    deadline_ = Clock::now() + ms(server.config().client_timeout_ms);
}

Conn::~Conn()
{
    if (file_fd_ >= 0) ::close(file_fd_);
    if (fd_ >= 0) ::close(fd_);
}

void Conn::unref()
{
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::unique_ptr<Conn> self(this); // the last reference frees it (STYLE: no raw delete)
    }
}

// ---------------------------------------------------------------------------------------------
// The loop thread

void Conn::on_events(uint32_t events)
{
    if (take_events(events)) advance();
}

bool Conn::take_events(uint32_t events)
{
    if (phase_ == Phase::closed) return false;
    if (events & EPOLLERR) {
        close_now(CWSGI_E_DISCONNECTED); // reset by the peer
        return false;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
        if (!read_socket()) return false;
    }
    if ((events & EPOLLRDHUP) && phase_ == Phase::running && !eof_) {
        // The peer shut its side while bytes we do not read yet remain: it is gone for the
        // app (LIFE-DISC-1) even before read() reaches the end.
        rdhup_ = true;
        note_gone();
    }
    if (events & EPOLLHUP) {
        // Both directions are down (a reset, or our shutdown and the client's): nothing more
        // can be read or written.
        close_now(CWSGI_E_DISCONNECTED);
        return false;
    }
    return true;
}

void Conn::note_gone()
{
    if (!gone_.load(std::memory_order_acquire)) gone_written_ = written_total_;
    gone_.store(true, std::memory_order_release);
    std::lock_guard<core::FutexMutex> lk(mu_);
    task_.notify();
}

void Conn::on_kick() { advance(); }

bool Conn::read_socket()
{
    char buf[kReadChunk];
    for (int i = 0; i < 8; ++i) {
        const bool lingering = phase_ == Phase::linger;
        if (phase_ == Phase::running && rbuf_.size() - rpos_ >= kReadCap) return true;
        ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n > 0) {
            last_read_ = Clock::now();
            if (lingering) {
                lingered_ += static_cast<uint64_t>(n);
                if (lingered_ > kLingerBytes) {
                    close_now(CWSGI_E_DISCONNECTED);
                    return false;
                }
            } else {
                rbuf_.append(buf, static_cast<size_t>(n));
            }
            if (static_cast<size_t>(n) < sizeof buf) return true;
            continue;
        }
        if (n == 0) {
            eof_ = true;
            if (phase_ == Phase::running) note_gone();
            return true;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        close_now(CWSGI_E_DISCONNECTED);
        return false;
    }
    return true;
}

void Conn::advance()
{
    // Bounded: each round either moves bytes or ends; a long pipeline yields to the other
    // connections after a few requests (the rest is taken on the next readiness or kick).
    bool moved = false;
    for (int round = 0; round < 16 && phase_ != Phase::closed; ++round) {
        moved = false;
        if (phase_ == Phase::idle || phase_ == Phase::head) {
            if (rpos_ == rbuf_.size() && eof_) {
                close_now(CWSGI_E_DISCONNECTED); // the client closed between requests
                return;
            }
            moved = parse_head();
            if (!moved && eof_ && phase_ == Phase::head) {
                // A head cut short by the end of the stream can never complete: close, as
                // gunicorn and nginx do (there is nobody left to read an answer).
                close_now(CWSGI_E_DISCONNECTED);
                return;
            }
        }
        if (phase_ == Phase::running) {
            moved |= pump_body();
            task_.run_pending(); // cooperative mode: the fiber runs here
            moved |= pump_response();
        }
        const uint64_t written = written_total_;
        if (!write_socket()) return;
        moved |= written_total_ != written; // room in the socket: the app's next bytes can go
        if (phase_ == Phase::running && !wire_done_) moved |= settle_wire();
        if (phase_ == Phase::running && wire_done_) {
            bool idle;
            {
                std::lock_guard<core::FutexMutex> lk(mu_);
                idle = !job_running_;
            }
            if (idle) {
                finish_request();
                moved = true;
            }
        }
        if (phase_ == Phase::linger) {
            if (wpos_ == wbuf_.size() && !shut_) {
                ::shutdown(fd_, SHUT_WR);
                shut_ = true;
            }
            if (eof_) {
                close_now(CWSGI_E_DISCONNECTED);
                return;
            }
        }
        if (!moved) break;
    }
    if (phase_ == Phase::closed) return;
    // Stopped by the bound while there was still work: the next loop turn goes on with it.
    if (moved) srv_.kick(*this);
    update_mask();
}

bool Conn::parse_head()
{
    if (rpos_ == rbuf_.size()) return false;
    if (phase_ == Phase::idle) {
        // LIMIT-5: the header deadline counts from the first byte of the request, however
        // slowly the rest trickles in.
        phase_ = Phase::head;
        deadline_ = Clock::now() + ms(srv_.config().client_timeout_ms);
    }
    std::string_view view(rbuf_.data() + rpos_, rbuf_.size() - rpos_);
    http1::Progress p = parser_.feed(view);
    if (p == http1::Progress::more) return false;
    core::RequestHead head;
    head.is_unix = peer_.is_unix;
    head.remote_addr = head.keep(peer_.remote_addr);
    head.remote_port = head.keep(peer_.remote_port);
    head.local_addr = head.keep(peer_.local_addr);
    head.local_port = head.keep(peer_.local_port);
    core::HeadCheck check;
    if (p == http1::Progress::error) {
        // REQ-REPLY-1: the parser's own status (400, 414, 431, 505); the app is never called.
        const http1::Error &e = parser_.error();
        check.status = e.status;
        check.reason = e.reason;
        check.rule = e.rule;
        answer_refused(head, check);
        return true;
    }
    if (!http1::fill_request_head(parser_, head)) {
        check.status = 500;
        check.reason = "out of memory";
        check.rule = "MEM-ARENA-1";
        answer_refused(head, check);
        return true;
    }
    check = core::validate_request_head(head, srv_.config().limits);
    if (check.status != 0) {
        answer_refused(head, check);
        return true;
    }
    start_request(head, check);
    return true;
}

void Conn::start_request(core::RequestHead &head, const core::HeadCheck &check)
{
    core::Context &ctx = srv_.ctx();
    minor_ = head.http_minor;
    target_.assign(head.target.substr(0, 200));
    rpos_ += parser_.head_size();
    decoder_.emplace(http1::BodyDecoder::for_check(check, srv_.config().limits));
    body_done_ =
        check.body == core::BodyKind::none || (check.body == core::BodyKind::length && check.content_length == 0);
    body_failed_ = false;
    if (!task_.prepare()) {
        // No fiber stack could be mapped: refuse this request rather than run the app on the
        // loop's own stack.
        core::HeadCheck busy;
        busy.status = 503;
        busy.reason = "no memory for a fiber stack";
        busy.rule = "THR-7";
        answer_refused(head, busy);
        return;
    }
    creq_ = core::Request::create(ctx, std::move(head), check, *this);
    if (!creq_) {
        core::HeadCheck oom;
        oom.status = 500;
        oom.reason = "out of memory";
        oom.rule = "MEM-ARENA-1";
        core::RequestHead none;
        none.remote_addr = none.keep(peer_.remote_addr);
        answer_refused(none, oom);
        return;
    }
    phase_ = Phase::running;
    last_read_ = Clock::now();
    {
        std::lock_guard<core::FutexMutex> lk(mu_);
        expect_continue_ = check.expect_continue;
        job_running_ = true;
    }
    ref(); // the run job's, dropped by hook_done
    // Cooperative mode runs the app right here until it first waits (a hello, to its end).
    task_.start(&Conn::job_run, this);
}

void Conn::answer_refused(core::RequestHead &head, const core::HeadCheck &check)
{
    const size_t before = wbuf_.size();
    std::string answer;
    http1::write_error(answer, 1, check.status); // our own version (RFC 9110 section 6.2)
    uint64_t body_bytes = 0;
    const size_t end = answer.find("\r\n\r\n");
    if (head.method == "HEAD" && end != std::string::npos) {
        answer.resize(end + 4); // a HEAD answer has no body (RFC 9110 section 9.3.2)
    } else if (end != std::string::npos) {
        body_bytes = answer.size() - end - 4;
    }
    if (wbuf_.size() == wpos_) last_write_ = Clock::now();
    wbuf_.append(answer);
    queued_total_ += wbuf_.size() - before;
    core::log_rejected(srv_.ctx(), head, check, body_bytes);
    begin_linger();
}

bool Conn::pump_body()
{
    if (body_done_ || body_failed_) return false;
    bool moved = false;
    std::lock_guard<core::FutexMutex> lk(mu_);
    while (rpos_ < rbuf_.size()) {
        const size_t space = in_.space(kInCap);
        if (space == 0) {
            in_blocked_ = true; // read_body kicks the loop once there is room
            break;
        }
        std::string_view input(rbuf_.data() + rpos_, std::min(rbuf_.size() - rpos_, space));
        size_t consumed = 0;
        std::string_view data;
        http1::Progress p = decoder_->decode(input, consumed, data);
        rpos_ += consumed;
        if (!data.empty()) {
            in_.push(data.data(), data.size(), kInCap);
            moved = true;
        }
        if (p == http1::Progress::done) {
            body_done_ = true;
            in_eof_ = true;
            trailers_ = decoder_->trailers();
            moved = true;
            break;
        }
        if (p == http1::Progress::error) {
            // INPUT-READ-4: a malformed body: the app's read fails, the connection closes.
            const http1::Error &e = decoder_->error();
            srv_.ctx().log().info(fmt::format("{}: malformed request body: {} ({})", target_, e.reason, e.rule));
            body_failed_ = true;
            read_error_ = CWSGI_E_BODY;
            moved = true;
            break;
        }
        if (consumed == 0) break;
    }
    if (!body_done_ && !body_failed_ && eof_ && rpos_ == rbuf_.size()) {
        // INPUT-READ-4: the client ended the stream before the body's end.
        body_failed_ = true;
        read_error_ = CWSGI_E_BODY;
        moved = true;
    }
    if (moved) task_.notify();
    // The consumed front goes, so that a long body never makes the buffer grow.
    if (rpos_ == rbuf_.size()) {
        rbuf_.clear();
        rpos_ = 0;
    } else if (rpos_ >= kReadCap) {
        rbuf_.erase(0, rpos_);
        rpos_ = 0;
    }
    return moved;
}

void Conn::queue(std::string_view bytes)
{
    if (wbuf_.size() == wpos_) last_write_ = Clock::now();
    wbuf_.append(bytes);
    queued_total_ += bytes.size();
}

bool Conn::pump_response()
{
    bool moved = false;
    std::lock_guard<core::FutexMutex> lk(mu_);
    if (want_continue_ && !continue_done_) {
        // INPUT-EXPECT-1: the 100 goes out when the app first reads, never after its answer.
        continue_done_ = true;
        if (!committed_ && minor_ >= 1) queue("HTTP/1.1 100 Continue\r\n\r\n");
        last_read_ = Clock::now(); // the client's body deadline starts with our word
        moved = true;
    }
    if (!info_.empty() && !head_queued_) {
        queue(info_);
        info_.clear();
        task_.notify();
        moved = true;
    }
    if (!committed_) return moved;
    const size_t before = wbuf_.size();
    if (!head_queued_) {
        if (wbuf_.size() == wpos_) last_write_ = Clock::now();
        http1::write_head(wbuf_, 1, head_); // our own version (RFC 9110 section 6.2)
        head_queued_ = true;
        queued_total_ += wbuf_.size() - before;
        head_mark_ = queued_total_;
        moved = true;
    }
    const bool chunked = head_.framing.framing == core::Framing::chunked;
    if (!out_.empty() && wbuf_.size() - wpos_ < kWireCap) {
        const size_t start = wbuf_.size();
        if (wbuf_.size() == wpos_) last_write_ = Clock::now();
        if (chunked) http1::write_chunk_header(wbuf_, out_.size());
        wbuf_.append(out_.data(), out_.size());
        if (chunked) wbuf_.append(http1::chunk_end());
        queued_total_ += wbuf_.size() - start;
        out_.clear();
        task_.notify(); // room for the writer again
        moved = true;
    }
    if (file_fd_ >= 0 && !file_started_ && out_.empty()) {
        // RESP-FILE-1: the range goes with sendfile(2) once what came before it is written.
        if (chunked && file_left_ > 0) {
            const size_t start = wbuf_.size();
            http1::write_chunk_header(wbuf_, static_cast<size_t>(file_left_));
            queued_total_ += wbuf_.size() - start;
        }
        file_started_ = true;
        moved = true;
    }
    if (!final_queued_ && out_.empty() && file_fd_ < 0 && (ended_ || aborted_)) {
        if (aborted_) {
            cut_ = true; // RESP-ERR-2: no last chunk, a short body: the client sees the cut
        } else if (chunked) {
            const size_t start = wbuf_.size();
            http1::write_last_chunk(wbuf_, {});
            queued_total_ += wbuf_.size() - start;
        }
        final_queued_ = true;
        moved = true;
    }
    return moved;
}

bool Conn::write_socket()
{
    for (;;) {
        while (wpos_ < wbuf_.size()) {
            ssize_t n = ::send(fd_, wbuf_.data() + wpos_, wbuf_.size() - wpos_, MSG_NOSIGNAL);
            if (n > 0) {
                wpos_ += static_cast<size_t>(n);
                written_total_ += static_cast<uint64_t>(n);
                last_write_ = Clock::now();
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            close_now(CWSGI_E_DISCONNECTED); // the peer is gone (EPIPE, ECONNRESET)
            return false;
        }
        if (head_queued_ && written_total_ >= head_mark_) sent_.store(true, std::memory_order_release);
        if (wpos_ < wbuf_.size()) return true; // the socket is full: EPOLLOUT
        wbuf_.clear();
        wpos_ = 0;
        if (!file_started_) return true;
        // The file range, zero-copy, now that everything before it is out.
        int ffd;
        int64_t off, left;
        {
            std::lock_guard<core::FutexMutex> lk(mu_);
            ffd = file_fd_;
            off = file_off_;
            left = file_left_;
        }
        int32_t result = CWSGI_OK;
        bool blocked = false;
        while (left > 0) {
            off_t o = static_cast<off_t>(off);
            ssize_t n = ::sendfile(fd_, ffd, &o, static_cast<size_t>(std::min<int64_t>(left, kFileStep)));
            if (n > 0) {
                off += n;
                left -= n;
                written_total_ += static_cast<uint64_t>(n);
                last_write_ = Clock::now();
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                blocked = true;
                break;
            }
            if (n == 0) {
                result = CWSGI_E_IO; // the file is shorter than the range: the framing is lost
                break;
            }
            close_now(CWSGI_E_DISCONNECTED);
            return false;
        }
        std::lock_guard<core::FutexMutex> lk(mu_);
        file_off_ = off;
        file_left_ = left;
        if (blocked) return true;
        ::close(file_fd_);
        file_fd_ = -1;
        file_started_ = false;
        file_result_ = result;
        if (result == CWSGI_OK && head_.framing.framing == core::Framing::chunked) queue(http1::chunk_end());
        task_.notify(); // send_file returns
        if (wbuf_.empty()) return true;
    }
}

bool Conn::settle_wire()
{
    // The response left (or was cut); the wire outcome is known once the socket took it all.
    if (!final_queued_ || wpos_ != wbuf_.size() || file_started_) return false;
    if (wire_outcome_ == 0) {
        // Decided when the last byte left, not when the core hears of it: a client that reads
        // the answer and closes at once did not disconnect from this request.
        wire_outcome_ = CWSGI_OK;
        if (cut_) {
            wire_outcome_ = CWSGI_E_IO; // we cut it (RESP-ERR-2)
        } else if (gone_.load(std::memory_order_acquire) && written_total_ > gone_written_) {
            // The client left before the end of the response (a client that read a whole
            // Content-Length body and closed before the app's finish did not).
            wire_outcome_ = CWSGI_E_DISCONNECTED;
        }
    }
    complete_wire(wire_outcome_);
    return wire_done_;
}

void Conn::complete_wire(int32_t outcome)
{
    if (wire_done_ || !creq_) return;
    bool run_as_job = false;
    {
        std::lock_guard<core::FutexMutex> lk(mu_);
        if (job_running_ && app_done_) {
            // handle() returned but its job has not ended yet (its done hook comes next):
            // try again at that kick, so that on_request_end can run as a job of its own.
            return;
        }
        run_as_job = app_done_ && srv_.app_has_request_end();
        if (run_as_job) job_running_ = true;
    }
    wire_done_ = true;
    if (run_as_job) {
        // Run on_request_end in the app's context, not on the loop's stack (THR-9).
        ref(); // the completion job's, dropped by hook_done
        task_.start(&Conn::job_complete, this, outcome);
    } else {
        // No app callback to run, or the app is still in handle(): its run() ends the request.
        creq_->complete(outcome);
    }
}

void Conn::finish_request()
{
    const bool keep = creq_ && creq_->keep_alive() && body_done_ && !body_failed_ && !cut_ && !draining_ &&
                      !srv_.stopping() && !gone_.load(std::memory_order_acquire) && !(eof_ && rpos_ == rbuf_.size());
    creq_.reset();
    decoder_.reset();
    {
        std::lock_guard<core::FutexMutex> lk(mu_);
        in_.clear();
        in_eof_ = false;
        read_error_ = 0;
        in_blocked_ = false;
        want_continue_ = false;
        continue_done_ = false;
        expect_continue_ = false;
        trailers_.clear();
        info_.clear();
        committed_ = false;
        head_ = core::ResponseHead{};
        out_.clear();
        ended_ = false;
        aborted_ = false;
        file_result_ = 0;
        app_done_ = false;
    }
    head_queued_ = false;
    final_queued_ = false;
    wire_done_ = false;
    wire_outcome_ = 0;
    cut_ = false;
    sent_.store(false, std::memory_order_relaxed);
    parser_.reset();
    if (!keep) {
        // RESP-FRAME-6: nothing after a response that closes the connection is processed.
        begin_linger();
        return;
    }
    rbuf_.erase(0, rpos_);
    rpos_ = 0;
    phase_ = Phase::idle;
    deadline_ = Clock::now() + ms(srv_.config().keepalive_ms);
}

void Conn::begin_linger()
{
    phase_ = Phase::linger;
    rbuf_.clear();
    rpos_ = 0;
    lingered_ = 0;
    linger_end_ = Clock::now() + kLingerTime;
    deadline_ = Clock::now() + kLingerQuiet;
    last_read_ = Clock::now();
}

void Conn::close_now(int32_t code)
{
    if (phase_ == Phase::closed) return;
    phase_ = Phase::closed;
    ::close(fd_);
    fd_ = -1;
    gone_.store(true, std::memory_order_release);
    {
        std::lock_guard<core::FutexMutex> lk(mu_);
        gone_locked_ = true;
        if (file_fd_ >= 0) {
            ::close(file_fd_);
            file_fd_ = -1;
            file_result_ = CWSGI_E_DISCONNECTED;
        }
        task_.notify();
    }
    srv_.forget(*this);
    if (creq_ && !wire_done_) {
        // Nothing of this connection calls the request back any more: its waits end now, and
        // a fiber may finish here (LIFE-DISC-1, LIFE-STOP-5).
        task_.orphan(code == CWSGI_E_SHUTDOWN ? CWSGI_E_SHUTDOWN : CWSGI_E_DISCONNECTED);
        task_.run_pending();
        // A response that left whole before the close keeps its outcome.
        const int32_t outcome = wire_outcome_ != 0 ? wire_outcome_ : cut_ ? CWSGI_E_IO : CWSGI_E_DISCONNECTED;
        complete_wire(outcome);
        if (!wire_done_) {
            // The run job is between handle()'s return and its done hook: end the request
            // here, the done hook cannot run it any more (the connection is gone).
            wire_done_ = true;
            creq_->complete(outcome);
        }
    }
}

void Conn::update_mask()
{
    if (phase_ == Phase::closed) return;
    uint32_t m = 0;
    switch (phase_) {
    case Phase::idle:
    case Phase::head:
    case Phase::linger:
        if (!eof_) m |= EPOLLIN | EPOLLRDHUP;
        break;
    case Phase::running:
        if (!eof_ && rbuf_.size() - rpos_ < kReadCap) m |= EPOLLIN;
        if (!eof_ && !rdhup_) m |= EPOLLRDHUP;
        break;
    case Phase::closed: break;
    }
    if (wpos_ < wbuf_.size() || file_started_) m |= EPOLLOUT;
    if (m != mask_) {
        mask_ = m;
        srv_.watch(*this, m, false);
    }
}

void Conn::on_tick(Clock::time_point now)
{
    const core::Config &cfg = srv_.config();
    switch (phase_) {
    case Phase::idle:
        if (now >= deadline_) close_now(CWSGI_E_DISCONNECTED); // --keep-alive passed: close quietly
        return;
    case Phase::head:
        if (now >= deadline_) {
            // LIMIT-5: the head did not complete within --client-timeout of its first byte.
            core::RequestHead head;
            head.remote_addr = head.keep(peer_.remote_addr);
            core::HeadCheck check;
            check.status = 408;
            check.reason = fmt::format("request head not complete {} ms after its first byte", cfg.client_timeout_ms);
            check.rule = "LIMIT-5";
            answer_refused(head, check);
            advance();
        }
        return;
    case Phase::linger:
        if (now >= linger_end_ || (now >= deadline_ && now - last_read_ >= kLingerQuiet)) {
            close_now(CWSGI_E_DISCONNECTED);
        }
        return;
    case Phase::running: break;
    case Phase::closed: return;
    }
    if ((wpos_ < wbuf_.size() || file_started_) && now - last_write_ >= ms(cfg.client_timeout_ms)) {
        // LIFE-DISC-2: the client took no byte of the response for --client-timeout.
        srv_.ctx().log().info(
            fmt::format("{}: the client read nothing for {} ms; closing", target_, cfg.client_timeout_ms));
        close_now(CWSGI_E_DISCONNECTED);
        return;
    }
    if (!body_done_ && !body_failed_ && rpos_ == rbuf_.size() && now - last_read_ >= ms(cfg.client_timeout_ms)) {
        bool waiting;
        {
            std::lock_guard<core::FutexMutex> lk(mu_);
            // A client that waits for our 100 Continue is not stalling (INPUT-EXPECT-1).
            waiting = in_.empty() && (!expect_continue_ || continue_done_);
        }
        if (waiting) {
            // INPUT-READ-4: no body byte for --client-timeout: the app's read fails with
            // CWSGI_E_TIMEOUT (the core answers 408 unless the app answers itself).
            srv_.ctx().log().info(
                fmt::format("{}: the request body stalled for {} ms", target_, cfg.client_timeout_ms));
            body_failed_ = true;
            std::lock_guard<core::FutexMutex> lk(mu_);
            read_error_ = CWSGI_E_TIMEOUT;
            task_.notify();
            srv_.kick(*this);
        }
    }
}

void Conn::on_drain()
{
    draining_ = true;
    if (phase_ != Phase::idle || rpos_ != rbuf_.size()) return;
    // A request sent before the stop but not read yet (a sync worker was busy) is in flight,
    // not idle: read what is there first (LIFE-STOP-4).
    if (!read_socket()) return;
    if (rpos_ == rbuf_.size()) {
        close_now(CWSGI_E_SHUTDOWN);
        return;
    }
    srv_.kick(*this); // epoll will not report the bytes read here
}

void Conn::on_deadline()
{
    {
        std::lock_guard<core::FutexMutex> lk(mu_);
        stopping_ = true;
        task_.notify();
    }
    close_now(CWSGI_E_SHUTDOWN);
}

void Conn::kick_locked()
{
    // Sync mode: the app runs inside this connection's loop turn, on the loop thread; the
    // call's SyncFlush carries the change out before it returns.
    if (srv_.executor().sync()) {
        sync_kick_ = true;
        return;
    }
    // A fiber runs inside this connection's own loop turn (advance, close_now), which carries
    // its changes out right after it yields: no kick needed, and none queued on the hot path.
    if (srv_.executor().cooperative() && srv_.on_loop_thread()) return;
    srv_.kick(*this);
}

// ---------------------------------------------------------------------------------------------
// The execution layer's jobs and hooks

void Conn::job_run(void *self, int32_t)
{
    auto *c = static_cast<Conn *>(self);
    c->creq_->run();
    std::lock_guard<core::FutexMutex> lk(c->mu_);
    c->app_done_ = true;
}

void Conn::job_complete(void *self, int32_t outcome) { static_cast<Conn *>(self)->creq_->complete(outcome); }

void Conn::hook_wake(void *self)
{
    // Another thread made the fiber runnable (its wait_fd, the SERIAL turn, the deadline).
    auto *c = static_cast<Conn *>(self);
    c->srv_.kick(*c);
}

void Conn::hook_done(void *self)
{
    auto *c = static_cast<Conn *>(self);
    {
        std::lock_guard<core::FutexMutex> lk(c->mu_);
        c->job_running_ = false;
    }
    // The loop moves on to the request's end (a fiber's job ends inside the loop's own turn).
    if (!c->srv_.on_loop_thread()) c->srv_.kick(*c);
    c->unref(); // the job's reference
}

void Conn::hook_block(void *self) { static_cast<Conn *>(self)->sync_block(); }

bool Conn::sync_progress()
{
    if (phase_ == Phase::closed) return true;
    bool moved = pump_body();
    moved |= pump_response();
    const uint64_t written = written_total_;
    if (!write_socket()) return true; // closed: the app's wait sees it
    // The wire outcome is settled after handle() returned (advance), not inside it.
    return moved || written_total_ != written;
}

void Conn::sync_check_stop()
{
    if (srv_.ctx().shutting_down() && !srv_.stopping()) srv_.sync_tick(*this);
}

void Conn::sync_block()
{
    // THR-10: the request blocks the worker. Only its own socket is served meanwhile; the
    // other connections wait in the kernel and in epoll (accepted, their bytes buffered).
    if (sync_progress() || phase_ == Phase::closed) return;
    short want = 0;
    if (!eof_ && rbuf_.size() - rpos_ < kReadCap) want |= POLLIN;
    if (!eof_ && !rdhup_) want |= POLLRDHUP;
    if (wpos_ < wbuf_.size() || file_started_) want |= POLLOUT;
    pollfd p[2] = {{fd_, want, 0}, {srv_.ctx().stop_fd(), POLLIN, 0}};
    const int n = ::poll(p, srv_.stopping() ? 1 : 2, static_cast<int>(Server::kTick.count()));
    if (n > 0 && p[0].revents != 0) {
        const short r = p[0].revents;
        uint32_t e = 0;
        if (r & POLLIN) e |= EPOLLIN;
        if (r & POLLRDHUP) e |= EPOLLRDHUP;
        if (r & POLLHUP) e |= EPOLLHUP;
        if (r & POLLERR) e |= EPOLLERR;
        if (!take_events(e)) return;
        sync_progress();
        if (phase_ == Phase::closed) return;
    }
    // The deadlines a loop turn would run: this connection's (body stall, write stall), the
    // graceful stop and its deadline.
    srv_.sync_tick(*this);
}

void Conn::hook_hold(void *self) { static_cast<Conn *>(self)->ref(); }
void Conn::hook_release(void *self) { static_cast<Conn *>(self)->unref(); }

void Conn::hook_describe(void *self, exec::DescribeBuf &out)
{
    auto *c = static_cast<Conn *>(self);
    if (!c->creq_) {
        out.put("a request being set up");
        return;
    }
    out.put("request ");
    out.put(c->creq_->id());
    out.put(" ");
    out.put(std::string_view(c->creq_->head().method).substr(0, 32));
    out.put(" ");
    out.put(std::string_view(c->target_));
}

// ---------------------------------------------------------------------------------------------
// core::Exchange, in the app's context

void Conn::continue_body()
{
    SyncFlush flush{*this};
    std::lock_guard<core::FutexMutex> lk(mu_);
    if (!want_continue_) {
        want_continue_ = true;
        kick_locked();
    }
}

int64_t Conn::read_body(void *buf, size_t cap)
{
    SyncFlush flush{*this};
    std::unique_lock<core::FutexMutex> lk(mu_);
    task_.wait(lk, [&] { return !in_.empty() || in_eof_ || read_error_ != 0 || gone_locked_ || stopping_; });
    if (!in_.empty()) {
        size_t n = in_.pop(buf, cap);
        // Decoding resumes once half the FIFO is free, not on every byte.
        if (in_blocked_ && in_.space(kInCap) >= kInCap / 2) {
            in_blocked_ = false;
            kick_locked();
        }
        return static_cast<int64_t>(n);
    }
    if (in_eof_) return 0;
    if (read_error_ != 0) return read_error_;
    if (stopping_) return CWSGI_E_SHUTDOWN; // LIFE-STOP-5
    return CWSGI_E_DISCONNECTED;
}

const std::vector<core::Header> *Conn::request_trailers()
{
    std::lock_guard<core::FutexMutex> lk(mu_);
    return in_eof_ ? &trailers_ : nullptr;
}

int32_t Conn::send_informational(uint32_t status, const std::vector<core::Header> &headers)
{
    SyncFlush flush{*this};
    std::unique_lock<core::FutexMutex> lk(mu_);
    if (gone_locked_) return CWSGI_E_DISCONNECTED;
    if (committed_ || minor_ < 1) return CWSGI_DROPPED;
    std::vector<core::Field> fields;
    fields.reserve(headers.size());
    for (const core::Header &h : headers) fields.push_back({h.name, h.value});
    http1::write_head(info_, 1, status, "", fields, false);
    kick_locked();
    // Bounded: an app that sends 1xx after 1xx waits for the loop to take them.
    task_.wait(lk, [&] { return info_.size() < kOutCap || gone_locked_ || stopping_; });
    return gone_locked_ ? CWSGI_E_DISCONNECTED : CWSGI_OK;
}

int32_t Conn::commit(const core::ResponseHead &head)
{
    std::lock_guard<core::FutexMutex> lk(mu_);
    if (gone_locked_) return CWSGI_E_DISCONNECTED;
    head_ = head;
    committed_ = true;
    // No kick: the core commits right before the first body byte or at the end, and both kick.
    return CWSGI_OK;
}

int32_t Conn::send_body(const void *data, size_t len)
{
    SyncFlush flush{*this};
    std::unique_lock<core::FutexMutex> lk(mu_);
    if (len == 0) {
        kick_locked(); // a zero-length write still puts the head on the wire
        return gone_locked_ ? CWSGI_E_DISCONNECTED : CWSGI_OK;
    }
    const char *p = static_cast<const char *>(data);
    for (;;) {
        if (gone_locked_) return CWSGI_E_DISCONNECTED;
        if (stopping_) return CWSGI_E_SHUTDOWN; // LIFE-STOP-5
        size_t n = out_.push(p, len, kOutCap);
        if (n > 0) {
            p += n;
            len -= n;
            kick_locked();
            if (len == 0) return CWSGI_OK;
            continue;
        }
        task_.wait_once(lk); // RESP-BODY-2: until the loop took the FIFO
    }
}

int32_t Conn::send_file(int fd, int64_t offset, int64_t count)
{
    SyncFlush flush{*this};
    std::unique_lock<core::FutexMutex> lk(mu_);
    if (gone_locked_) return CWSGI_E_DISCONNECTED;
    if (!committed_ || count <= 0 || file_fd_ >= 0) return CWSGI_E_UNSUPPORTED;
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return CWSGI_E_UNSUPPORTED;
    int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) return CWSGI_E_UNSUPPORTED;
    file_fd_ = copy;
    file_off_ = offset;
    file_left_ = count;
    file_result_ = 0;
    kick_locked();
    // The call returns once the range is on the wire (its backpressure, as a write's).
    task_.wait(lk, [&] { return file_fd_ < 0 || gone_locked_ || stopping_; });
    if (file_fd_ >= 0) return stopping_ ? CWSGI_E_SHUTDOWN : CWSGI_E_DISCONNECTED;
    return file_result_;
}

int32_t Conn::end_body()
{
    SyncFlush flush{*this};
    std::lock_guard<core::FutexMutex> lk(mu_);
    ended_ = true;
    kick_locked();
    return gone_locked_ ? CWSGI_E_DISCONNECTED : CWSGI_OK;
}

void Conn::abort_body()
{
    SyncFlush flush{*this};
    std::lock_guard<core::FutexMutex> lk(mu_);
    aborted_ = true;
    kick_locked();
}

bool Conn::disconnected() const { return gone_.load(std::memory_order_acquire); }

bool Conn::response_sent() const { return sent_.load(std::memory_order_acquire); }

int32_t Conn::wait_fd(int fd, uint32_t events, int32_t timeout_ms)
{
    if (srv_.executor().sync()) return sync_wait_fd(fd, events, timeout_ms);
    return task_.wait_fd(fd, events, timeout_ms);
}

int32_t Conn::sync_wait_fd(int fd, uint32_t events, int32_t timeout_ms)
{
    const auto deadline = Clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 0));
    for (;;) {
        if (srv_.executor().hard_stopped()) return CWSGI_E_SHUTDOWN; // LIFE-STOP-5
        if (phase_ == Phase::closed || gone_.load(std::memory_order_acquire)) {
            std::lock_guard<core::FutexMutex> lk(mu_);
            return stopping_ ? CWSGI_E_SHUTDOWN : CWSGI_E_DISCONNECTED;
        }
        int slice = static_cast<int>(Server::kTick.count());
        if (timeout_ms >= 0) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
            slice = static_cast<int>(std::clamp<int64_t>(left, 0, slice));
        }
        short sock = 0;
        if (!eof_ && !rdhup_) sock |= POLLRDHUP;
        if (wpos_ < wbuf_.size() || file_started_) sock |= POLLOUT;
        pollfd p[3] = {{fd,
                        static_cast<short>(((events & CWSGI_WAIT_READ) ? POLLIN : 0) |
                                           ((events & CWSGI_WAIT_WRITE) ? POLLOUT : 0)),
                        0},
                       {fd_, sock, 0},
                       {srv_.ctx().stop_fd(), POLLIN, 0}};
        const int n = ::poll(p, srv_.stopping() ? 2 : 3, slice);
        if (n < 0 && errno != EINTR) return CWSGI_E_IO;
        if (n > 0 && p[0].revents != 0) {
            const short r = p[0].revents;
            if (r & POLLNVAL) return CWSGI_E_INVAL;
            if (r & (POLLERR | POLLHUP)) return static_cast<int32_t>(events);
            const uint32_t ready = ((r & POLLIN) ? CWSGI_WAIT_READ : 0u) | ((r & POLLOUT) ? CWSGI_WAIT_WRITE : 0u);
            if ((ready & events) != 0) return static_cast<int32_t>(ready & events);
        }
        if (n > 0 && p[1].revents != 0) {
            const short r = p[1].revents;
            uint32_t e = 0;
            if (r & POLLRDHUP) e |= EPOLLRDHUP | EPOLLIN;
            if (r & POLLHUP) e |= EPOLLHUP;
            if (r & POLLERR) e |= EPOLLERR;
            if (take_events(e)) sync_progress(); // a shut side marks the peer gone (note_gone)
            continue;                            // the checks at the top say what the wait returns
        }
        srv_.sync_tick(*this);
        if (timeout_ms >= 0 && Clock::now() >= deadline) return CWSGI_E_TIMEOUT;
    }
}

} // namespace cwsgi::adapters::forking
