// server.cc: the worker's epoll loop, accepting, the kick queue and the graceful stop (see
// server.hh).
#include "server.hh"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "conn.hh"
#include "core/app.hh"

namespace cwsgi::adapters::forking {

namespace {

/// epoll tags of the descriptors that are not connections (a Conn's tag is its address, which
/// is never this small).
constexpr uint64_t kTagWake = 1;
constexpr uint64_t kTagStop = 2;
constexpr uint64_t kTagListener = 16; // + the listener's index

/// Connections accepted per readiness event of a listener before the loop serves others.
constexpr int kAcceptBurst = 16;
/// How long accepting pauses when the process is out of descriptors.
constexpr auto kAcceptPause = std::chrono::milliseconds(100);

exec::Executor::Options executor_options(core::Context &ctx)
{
    exec::Executor::Options o;
    o.mode = ctx.exec_mode();
    // THR-10: sync mode runs handle() inline on the loop; Conn's block hook serves its socket.
    o.inline_sync = true;
    o.threads = std::max(1u, ctx.config().threads);
    o.stack_size = ctx.config().stack_size;
    o.serial = ctx.app() != nullptr && ctx.app()->desc().thread_safety == CWSGI_THREADS_SERIAL;
    o.log_fd = ctx.log().fd() != 2 ? ctx.log().fd() : -1;
    return o;
}

void format_address(const sockaddr *sa, std::string &addr, std::string &port)
{
    char buf[INET6_ADDRSTRLEN] = {0};
    if (sa->sa_family == AF_INET) {
        const auto *in = reinterpret_cast<const sockaddr_in *>(sa);
        ::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
        addr = buf;
        port = std::to_string(ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const auto *in6 = reinterpret_cast<const sockaddr_in6 *>(sa);
        ::inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
        addr = buf;
        port = std::to_string(ntohs(in6->sin6_port));
    }
}

} // namespace

Server::Server(core::Context &ctx) : ctx_(ctx), executor_(executor_options(ctx)) {}

Server::~Server()
{
    while (conns_ != nullptr) {
        Conn *c = conns_;
        conns_ = c->next_;
        c->unref();
    }
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
}

bool Server::start(std::vector<core::Listener> &listeners, std::string &error)
{
    app_has_request_end_ = ctx_.app() != nullptr && ctx_.app()->desc().on_request_end != nullptr;
    loop_thread_ = std::this_thread::get_id();
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epoll_fd_ < 0 || wake_fd_ < 0) {
        error = fmt::format("forking: epoll or eventfd failed: {}", std::strerror(errno));
        return false;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kTagWake;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
    ev.data.u64 = kTagStop;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, ctx_.stop_fd(), &ev);
    for (size_t i = 0; i < listeners.size(); ++i) {
        // The listeners are the master's (inherited over fork) and stay open after the stop;
        // EPOLLEXCLUSIVE wakes one waiting worker per new connection, not all of them.
        epoll_event lev{};
        lev.events = EPOLLIN | EPOLLEXCLUSIVE;
        lev.data.u64 = kTagListener + i;
        if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listeners[i].fd, &lev) != 0) {
            error =
                fmt::format("forking: cannot watch the listener {}: {}", listeners[i].display, std::strerror(errno));
            return false;
        }
        listen_fds_.push_back(listeners[i].fd);
        listen_unix_.push_back(listeners[i].is_unix);
        listen_path_.push_back(listeners[i].spec.path);
    }
    const bool cooperative = executor_.cooperative();
    ctx_.set_loop_threads(1);
    // Fibers take turns through the execution layer's gate; sync mode runs one at a time anyway.
    if ((cooperative || executor_.sync()) && ctx_.app() != nullptr) ctx_.app()->set_serialized_by_caller(true);
    executor_.start();
    const core::Config &cfg = ctx_.config();
    ctx_.log().debug(fmt::format("forking: {} listener(s), one epoll loop, handle() {}", listeners.size(),
                                 cooperative        ? fmt::format("on fibers of {} KiB", cfg.stack_size / 1024)
                                 : executor_.sync() ? std::string("inline on the loop, one request at a time (sync)")
                                                    : fmt::format("on {} app thread(s)", executor_.options().threads)));
    return true;
}

void Server::set_accepting(bool on)
{
    if (accepting_ == on) return;
    accepting_ = on;
    for (size_t i = 0; i < listen_fds_.size(); ++i) {
        if (on) {
            epoll_event lev{};
            lev.events = EPOLLIN | EPOLLEXCLUSIVE;
            lev.data.u64 = kTagListener + i;
            ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fds_[i], &lev);
        } else {
            ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fds_[i], nullptr);
        }
    }
}

void Server::accept_from(size_t index)
{
    const int lfd = listen_fds_[index];
    for (int i = 0; i < kAcceptBurst; ++i) {
        sockaddr_storage peer{};
        socklen_t len = sizeof peer;
        int fd = ::accept4(lfd, reinterpret_cast<sockaddr *>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // Out of descriptors: stop accepting for a moment instead of spinning on a
                // listener that stays readable.
                ctx_.log().warning(fmt::format("forking: accept failed ({}); pausing for {} ms", std::strerror(errno),
                                               kAcceptPause.count()));
                set_accepting(false);
                accept_resume_ = std::chrono::steady_clock::now() + kAcceptPause;
            }
            return; // EAGAIN: another worker took it, or the queue is empty
        }
        Peer p;
        p.is_unix = listen_unix_[index];
        if (p.is_unix) {
            p.local_addr = listen_path_[index];
        } else {
            int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            format_address(reinterpret_cast<sockaddr *>(&peer), p.remote_addr, p.remote_port);
            sockaddr_storage local{};
            socklen_t llen = sizeof local;
            if (::getsockname(fd, reinterpret_cast<sockaddr *>(&local), &llen) == 0) {
                format_address(reinterpret_cast<sockaddr *>(&local), p.local_addr, p.local_port);
            }
        }
        // The new Conn's one reference is the loop's, dropped by forget() and bury().
        Conn *c = std::make_unique<Conn>(*this, fd, std::move(p)).release();
        c->prev_ = nullptr;
        c->next_ = conns_;
        if (conns_ != nullptr) conns_->prev_ = c;
        conns_ = c;
        ++conn_count_;
        watch(*c, EPOLLIN | EPOLLRDHUP, true);
    }
}

void Server::watch(Conn &conn, uint32_t events, bool first)
{
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = &conn;
    ::epoll_ctl(epoll_fd_, first ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, conn.fd(), &ev);
}

void Server::forget(Conn &conn)
{
    // The caller closed the socket already (which also took it off epoll). The loop's
    // reference goes at the end of this loop turn: a Conn may still be named in the events of
    // this turn or run a fiber further up the stack.
    if (conn.prev_ != nullptr) {
        conn.prev_->next_ = conn.next_;
    } else {
        conns_ = conn.next_;
    }
    if (conn.next_ != nullptr) conn.next_->prev_ = conn.prev_;
    conn.prev_ = conn.next_ = nullptr;
    --conn_count_;
    graveyard_.push_back(&conn);
}

void Server::kick(Conn &conn)
{
    bool wake = false;
    {
        std::lock_guard<std::mutex> lk(kick_mu_);
        if (conn.kicked_) return;
        conn.kicked_ = true;
        conn.ref(); // dropped by drain_kicks
        kicks_.push_back(&conn);
        if (std::this_thread::get_id() != loop_thread_ && !wake_pending_) {
            wake_pending_ = true;
            wake = true;
        }
    }
    if (wake) {
        uint64_t one = 1;
        ssize_t n = ::write(wake_fd_, &one, sizeof one);
        (void)n; // a full counter still wakes the loop
    }
}

void Server::drain_kicks()
{
    // Kicks made while these run (the loop thread's own) are taken by the next round; the
    // bound keeps one busy connection from starving the others' events.
    for (int round = 0; round < 8; ++round) {
        std::vector<Conn *> batch;
        {
            std::lock_guard<std::mutex> lk(kick_mu_);
            if (kicks_.empty()) return;
            batch.swap(kicks_);
            for (Conn *c : batch) c->kicked_ = false;
        }
        for (Conn *c : batch) {
            if (!c->closed()) c->on_kick();
            c->unref();
        }
    }
}

void Server::tick()
{
    auto now = std::chrono::steady_clock::now();
    if (now - last_tick_ < kTick) return;
    last_tick_ = now;
    if (!accepting_ && !stopping_ && now >= accept_resume_) set_accepting(true);
    for (Conn *c = conns_; c != nullptr;) {
        Conn *next = c->next_; // on_tick may close and forget c
        c->on_tick(now);
        c = next;
    }
}

void Server::begin_drain()
{
    // LIFE-STOP-1: no new connections; idle ones close now, the others after their answer.
    stopping_ = true;
    drain_deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(ctx_.config().graceful_timeout_ms);
    if (executor_.sync() && accepting_) {
        // THR-10: a sync worker accepts only between requests, so clients the kernel took
        // while it was busy may wait in the listen queue: they sent their requests before the
        // stop and are served like the connections already held (bounded).
        for (int round = 0; round < 4; ++round) {
            const size_t before = conn_count_;
            for (size_t i = 0; i < listen_fds_.size(); ++i) accept_from(i);
            if (conn_count_ == before) break;
        }
    }
    set_accepting(false);
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, ctx_.stop_fd(), nullptr);
    size_t busy = 0;
    for (Conn *c = conns_; c != nullptr;) {
        Conn *next = c->next_;
        if (!c->quiet()) ++busy;
        c->on_drain();
        c = next;
    }
    ctx_.log().info(fmt::format("Graceful stop: {} connection(s) with a request in flight, waiting up to {} ms", busy,
                                ctx_.config().graceful_timeout_ms));
}

void Server::sync_tick(Conn &conn)
{
    const auto now = std::chrono::steady_clock::now();
    if (ctx_.shutting_down() && !stopping_) begin_drain();
    if (stopping_ && now >= drain_deadline_) {
        // LIFE-STOP-2/5 inside the request: its waits end with CWSGI_E_SHUTDOWN and its
        // connection closes; run() cuts the others once the job returned.
        executor_.hard_stop();
        conn.on_deadline();
        return;
    }
    conn.on_tick(now);
}

void Server::bury()
{
    for (Conn *c : graveyard_) c->unref();
    graveyard_.clear();
}

bool Server::run()
{
    using clock = std::chrono::steady_clock;
    constexpr int kMaxEvents = 128;
    epoll_event events[kMaxEvents];
    for (;;) {
        // (A sync request may have started the drain from inside its wait: Server::sync_tick.)
        if (ctx_.shutting_down() && !stopping_) begin_drain();
        if (stopping_ && (conn_count_ == 0 || clock::now() >= drain_deadline_)) break;
        int timeout = conn_count_ > 0 || !accepting_ ? static_cast<int>(kTick.count()) : 1000;
        {
            std::lock_guard<std::mutex> lk(kick_mu_);
            if (!kicks_.empty()) timeout = 0;
        }
        int n = ::epoll_wait(epoll_fd_, events, kMaxEvents, timeout);
        if (n < 0 && errno != EINTR) {
            ctx_.log().error(fmt::format("forking: epoll_wait failed: {}", std::strerror(errno)));
            break;
        }
        for (int i = 0; i < n; ++i) {
            const uint64_t tag = events[i].data.u64;
            if (tag == kTagWake) {
                uint64_t v;
                ssize_t r = ::read(wake_fd_, &v, sizeof v);
                (void)r;
                std::lock_guard<std::mutex> lk(kick_mu_);
                wake_pending_ = false;
            } else if (tag == kTagStop) {
                // ctx.shutting_down() is set before the byte is written; the top of the loop
                // starts the drain.
            } else if (tag >= kTagListener && tag < kTagListener + listen_fds_.size()) {
                if (accepting_) accept_from(static_cast<size_t>(tag - kTagListener));
            } else {
                static_cast<Conn *>(events[i].data.ptr)->on_events(events[i].events);
            }
        }
        drain_kicks();
        tick();
        bury();
    }

    // LIFE-STOP-2/5: past the deadline (or nothing left). Every request still in flight is
    // cut: its waits end with CWSGI_E_SHUTDOWN, its connection closes.
    if (conn_count_ > 0) {
        ctx_.log().warning(fmt::format("Graceful timeout: closing {} connection(s) still open", conn_count_));
    }
    for (Conn *c = conns_; c != nullptr;) {
        Conn *next = c->next_;
        c->on_deadline();
        c = next;
    }
    executor_.hard_stop();
    // Let the fibers and pool jobs that were woken finish through the kick queue (bounded).
    auto until = clock::now() + std::chrono::seconds(2);
    while (clock::now() < until) {
        drain_kicks();
        bury();
        std::lock_guard<std::mutex> lk(kick_mu_);
        if (kicks_.empty()) break;
    }
    auto grace = std::chrono::milliseconds(1000);
    const bool pool_done = executor_.stop(grace);
    drain_kicks();
    bury();
    if (!pool_done) {
        ctx_.log().error("App threads still busy after the graceful stop; leaving them behind");
        return false;
    }
    return true;
}

} // namespace cwsgi::adapters::forking
