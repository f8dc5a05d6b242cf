// server.cc: libh2o's configuration, the loop threads, and the graceful stop (see server.hh).
#include "server.hh"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <future>
#include <cstdlib>

#include <fmt/format.h>

#include "core/app.hh"
#include "errors.hh"
#include "stream.hh"

namespace cwsgi::adapters::h2o {

namespace {

/// Rapid reset (CVE-2023-44487): a connection is closed once its client cut at least this
/// many streams while the app worked on them, and more than kRapidResetRatio times as many as
/// it let finish. A browser that cancels some requests stays far below both.
constexpr uint32_t kRapidResetFloor = 100;
constexpr uint32_t kRapidResetRatio = 4;
/// Connections tallied per loop before the table starts over (the ids of closed connections
/// are never reported, so the table is bounded this way).
constexpr size_t kTallyCap = 16384;

/// Connections accepted per readiness event of a listener before the loop serves others.
constexpr int kAcceptBurst = 16;

exec::Executor::Options executor_options(core::Context &ctx)
{
    exec::Executor::Options o;
    o.mode = ctx.exec_mode();
    o.threads = std::max(1u, ctx.config().threads);
    o.stack_size = ctx.config().stack_size;
    o.serial = ctx.app() != nullptr && ctx.app()->desc().thread_safety == CWSGI_THREADS_SERIAL;
    o.log_fd = ctx.log().fd() != 2 ? ctx.log().fd() : -1;
    return o;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Loop

Loop::Loop(Server &server, unsigned index) : server_(server), index_(index) {}

Loop::~Loop()
{
    join();
    for (int fd : listen_fds_) ::close(fd); // left over when the thread never took them
    if (wake_fd_ >= 0 && wake_sock_ == nullptr) ::close(wake_fd_);
}

bool Loop::start(const std::vector<core::Listener> &listeners, std::string &error)
{
    for (const core::Listener &l : listeners) {
        // Each loop has its own descriptor of the core's socket (h2o's server does the same):
        // the kernel then hands each new connection to one of the loops waiting on it.
        int fd = ::fcntl(l.fd, F_DUPFD_CLOEXEC, 0);
        if (fd < 0) {
            error = fmt::format("could not duplicate the listener {}", l.display);
            return false;
        }
        listen_fds_.push_back(fd);
    }
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) {
        error = "eventfd failed";
        return false;
    }
    // Everything of libh2o is created, used and destroyed on the loop's own thread: its
    // sockets take their buffers from a per-thread spare list (h2o_socket_buffer_prototype),
    // and a socket made on one thread but read on another would share that thread's list.
    std::promise<void> ready;
    std::future<void> started = ready.get_future();
    thread_ = std::thread([this, &ready] { run(ready); });
    started.wait();
    return true;
}

void Loop::setup()
{
    evloop_ = h2o_evloop_create();
    h2o_context_init(&link_.ctx, evloop_, server_.conf());
    link_.loop = this;
    recv_.loop = this;
    h2o_multithread_register_receiver(link_.ctx.queue, &recv_.super, &Loop::on_messages);
    h2o_timeout_init(evloop_, &write_timeout_, std::max<uint64_t>(server_.ctx().config().client_timeout_ms, 1));
    // The idle sweep runs 4 times per --keep-alive (at most once a second, at least every
    // 50 ms), so an idle connection is closed within 1.25 times --keep-alive.
    idle_limit_ms_ = std::max<uint64_t>(server_.ctx().config().keepalive_ms, 1000);
    h2o_timeout_init(evloop_, &sweep_timeout_, std::clamp<uint64_t>(idle_limit_ms_ / 4, 50, 1000));
    sweep_.entry.cb = &Loop::on_sweep;
    sweep_.loop = this;
    h2o_timeout_link(evloop_, &sweep_timeout_, &sweep_.entry);
    accept_.ctx = &link_.ctx;
    accept_.hosts = server_.conf()->hosts;
    accept_.ssl_ctx = server_.ssl_ctx();
    wake_sock_ = h2o_evloop_socket_create(evloop_, wake_fd_, H2O_SOCKET_FLAG_DONT_READ);
    wake_sock_->data = this;
    h2o_socket_read_start(wake_sock_, &Loop::on_wake);
    for (int fd : listen_fds_) {
        h2o_socket_t *sock = h2o_evloop_socket_create(evloop_, fd, H2O_SOCKET_FLAG_DONT_READ);
        sock->data = this;
        h2o_socket_read_start(sock, &Loop::on_accept);
        listeners_.push_back(sock);
    }
    listen_fds_.clear(); // owned by their sockets now
}

void Loop::teardown()
{
    close_listeners();
    h2o_socket_read_stop(wake_sock_);
    h2o_socket_close(wake_sock_); // closes wake_fd_
    // The GOAWAY's graceful-close timer of HTTP/2 outlives the connections it watched.
    if (h2o_timeout_is_linked(&link_.ctx.http2._graceful_shutdown_timeout)) {
        h2o_timeout_unlink(&link_.ctx.http2._graceful_shutdown_timeout);
    }
    h2o_timeout_dispose(evloop_, &write_timeout_);
    if (h2o_timeout_is_linked(&sweep_.entry)) h2o_timeout_unlink(&sweep_.entry);
    h2o_timeout_dispose(evloop_, &sweep_timeout_);
    h2o_multithread_queue_t *queue = link_.ctx.queue;
    h2o_multithread_unregister_receiver(queue, &recv_.super);
    h2o_context_dispose(&link_.ctx);
    // Let the loop run the closes it deferred, then free it. libh2o 2.2.5's
    // h2o_multithread_destroy_queue closes the queue's sockets but never frees the queue.
    h2o_evloop_run(evloop_, 0);
    h2o_evloop_destroy(evloop_);
    std::free(queue);
    // libh2o keeps freed socket buffers in a per-thread list for reuse, which dies with the
    // thread: give them back (each one's first word links the next).
    h2o_mem_recycle_t &spare = h2o_socket_buffer_prototype.allocator;
    while (spare._link != nullptr) {
        void *chunk = spare._link;
        spare._link = *static_cast<struct st_h2o_mem_recycle_chunk_t **>(chunk);
        std::free(chunk);
    }
    spare.cnt = 0;
}

void Loop::run(std::promise<void> &ready)
{
    setup();
    ready.set_value();
    while (!exit_.load(std::memory_order_acquire)) {
        h2o_evloop_run(evloop_, 1000);
    }
    // Let the connections cut last finish closing (bounded: 2 s), and the messages that came
    // in last (kicks of requests that ended) release their references.
    for (int i = 0; i < 200; ++i) {
        h2o_evloop_run(evloop_, 10);
        if (h2o_linklist_is_empty(&link_.ctx.http1._conns) && h2o_linklist_is_empty(&link_.ctx.http2._conns)) break;
    }
    h2o_evloop_run(evloop_, 0);
    teardown();
}

void Loop::command(LoopCommand cmd)
{
    uint8_t want = static_cast<uint8_t>(cmd);
    uint8_t cur = pending_cmd_.load(std::memory_order_acquire);
    while (cur < want && !pending_cmd_.compare_exchange_weak(cur, want, std::memory_order_acq_rel)) {
    }
    uint64_t one = 1;
    ssize_t n = ::write(wake_fd_, &one, sizeof one);
    (void)n; // a full counter still wakes the loop
}

void Loop::join()
{
    if (thread_.joinable()) thread_.join();
}

void Loop::on_wake(h2o_socket_t *sock, const char *err)
{
    auto *self = static_cast<Loop *>(sock->data);
    if (err != nullptr) return;
    uint64_t v;
    ssize_t n = ::read(self->wake_fd_, &v, sizeof v);
    (void)n;
    // h2o's socket layer read the eventfd's counter into its buffer already; drop it.
    h2o_buffer_consume(&sock->input, sock->input->size);
    uint8_t want = self->pending_cmd_.load(std::memory_order_acquire);
    while (self->done_cmd_ < want) {
        ++self->done_cmd_;
        self->carry_out(static_cast<LoopCommand>(self->done_cmd_));
    }
}

void Loop::carry_out(LoopCommand cmd)
{
    switch (cmd) {
    case LoopCommand::none: break;
    case LoopCommand::drain:
        // LIFE-STOP-1: no new connections; GOAWAY on HTTP/2; HTTP/1 responses from now on
        // close their connection (libh2o and the core both see the stop), and connections
        // that wait between requests are closed now.
        close_listeners();
        h2o_context_request_shutdown(&link_.ctx);
        shut_connections(true);
        break;
    case LoopCommand::cut:
        // LIFE-STOP-2: past the deadline, every connection still open is cut.
        shut_connections(false);
        break;
    case LoopCommand::exit: exit_.store(true, std::memory_order_release); break;
    }
}

void Loop::close_listeners()
{
    for (h2o_socket_t *sock : listeners_) {
        h2o_socket_read_stop(sock);
        h2o_socket_close(sock); // our dup(); the core closes its own descriptor
    }
    listeners_.clear();
}

void Loop::shut_connections(bool idle_only)
{
    struct Filter {
        bool idle_only;
    } filter{idle_only};
    auto cb = [](h2o_req_t *req, void *data) -> int {
        const bool idle_only = static_cast<Filter *>(data)->idle_only;
        // A request libh2o has not parsed yet (version 0) means an HTTP/1 connection waiting
        // for its next request.
        if (idle_only && req->version != 0) return 0;
        h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
        if (sock != nullptr) ::shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
        return 0;
    };
    h2o_globalconf_t *conf = server_.conf();
    conf->http1.callbacks.foreach_request(&link_.ctx, cb, &filter);
    if (!idle_only) conf->http2.callbacks.foreach_request(&link_.ctx, cb, &filter);
}

void Loop::on_sweep(h2o_timeout_entry_t *entry)
{
    Loop *self = reinterpret_cast<SweepLink *>(entry)->loop;
    self->sweep_idle();
    h2o_timeout_link(self->evloop_, &self->sweep_timeout_, &self->sweep_.entry);
}

void Loop::sweep_idle()
{
    idle_next_.clear();
    auto cb = [](h2o_req_t *req, void *data) -> int {
        Loop *self = static_cast<Loop *>(data);
        // Idle: no request parsed (version 0) and no byte of the next one in the buffer.
        if (req->version != 0) return 0;
        h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
        if (sock == nullptr || (sock->input != nullptr && sock->input->size != 0)) return 0;
        const size_t bytes = sock->bytes_read + sock->bytes_written;
        const uint64_t now = h2o_now(self->evloop_);
        IdleMark mark{now, bytes};
        auto it = self->idle_.find(req->conn->id);
        if (it != self->idle_.end() && it->second.bytes == bytes) mark.since_ms = it->second.since_ms;
        if (now - mark.since_ms >= self->idle_limit_ms_) {
            // libh2o sees the end of the stream and closes the connection itself.
            ::shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
            return 0;
        }
        self->idle_next_.emplace(req->conn->id, mark);
        return 0;
    };
    server_.conf()->http1.callbacks.foreach_request(&link_.ctx, cb, this);
    idle_.swap(idle_next_);
}

void Loop::note_h2_stream_end(h2o_conn_t *conn, bool cut)
{
    if (h2_tally_.size() >= kTallyCap && h2_tally_.find(conn->id) == h2_tally_.end()) h2_tally_.clear();
    H2Tally &t = h2_tally_[conn->id];
    if (t.closed) return;
    ++(cut ? t.cut : t.done);
    if (t.cut < kRapidResetFloor || t.cut <= kRapidResetRatio * t.done) return;
    t.closed = true;
    server_.ctx().log().warning(fmt::format("HTTP/2 connection {}: the client cut {} streams and let {} finish "
                                            "(rapid reset); closing it",
                                            conn->id, t.cut, t.done));
    // libh2o 2.2.5 has no public way to send a GOAWAY for one connection (its connection
    // struct needs a header Debian does not ship), so the connection is cut: libh2o sees the
    // end of the stream, closes it and disposes its streams; the frames it already read are
    // not dispatched to the app (h2_refused).
    h2o_socket_t *sock = conn->callbacks->get_socket(conn);
    if (sock != nullptr) ::shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
}

bool Loop::h2_refused(const h2o_conn_t *conn) const
{
    auto it = h2_tally_.find(conn->id);
    return it != h2_tally_.end() && it->second.closed;
}

void Loop::on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != nullptr) return;
    auto *self = static_cast<Loop *>(listener->data);
    for (int i = 0; i < kAcceptBurst; ++i) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == nullptr) break;
        h2o_accept(&self->accept_, sock);
    }
}

void Loop::on_messages(h2o_multithread_receiver_t *, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        auto *m = reinterpret_cast<MessageLink *>(messages->next);
        h2o_linklist_unlink(&m->super.link);
        m->self->on_message();
    }
}

// ---------------------------------------------------------------------------------------------
// Server

Server::Server(core::Context &ctx) : ctx_(ctx), executor_(executor_options(ctx)) {}

Server::~Server()
{
    loops_.clear();
    if (conf_ready_) h2o_config_dispose(&conf_);
    if (ssl_ctx_ != nullptr) SSL_CTX_free(ssl_ctx_);
}

int Server::on_req(h2o_handler_t *, h2o_req_t *req)
{
    Stream::handle(Loop::from(req), req);
    return 0;
}

bool Server::start(std::vector<core::Listener> &listeners, std::string &error)
{
    const core::Config &cfg = ctx_.config();
    app_has_request_end_ = ctx_.app() != nullptr && ctx_.app()->desc().on_request_end != nullptr;

    h2o_config_init(&conf_);
    conf_ready_ = true;
    // No Server header from libh2o (the app's own, if any, goes through; RESP-HDR-4).
    conf_.server_name = h2o_iovec_init(H2O_STRLIT(""));
    // LIMIT-4: libh2o 2.2.5 buffers the whole body before the handler; it answers 413 itself
    // for a body over this (a declared length at once, a chunked body once it grew past it).
    // libh2o refuses a chunked body once it reaches this size, so one byte more lets a body of
    // exactly the limit through; a declared Content-Length over the limit reaches the core,
    // which answers 413 itself.
    if (cfg.limits.request_body >= 0) conf_.max_request_entity_size = static_cast<size_t>(cfg.limits.request_body) + 1;
    // libh2o's HTTP/1 request timeout bounds the idle time before a request and the whole
    // request's arrival together (it is armed once, not on each read): --client-timeout, so
    // that an upload is not cut at --keep-alive; the loops close idle connections themselves
    // (Loop::sweep_idle).
    conf_.http1.req_timeout = std::max<uint64_t>(cfg.client_timeout_ms, 1000);
    conf_.http2.idle_timeout = std::max<uint64_t>(cfg.client_timeout_ms, 1000);
    conf_.http2.graceful_shutdown_timeout = cfg.graceful_timeout_ms;
    h2o_hostconf_t *host = h2o_config_register_host(&conf_, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    // The core decides framing and the adapter frames chunks itself: libh2o's chunked filter
    // (registered with every path) would turn any streamed response but a 200 into a
    // close-delimited one. libh2o's own error answers use the host's fallback path.
    install_filters(path, ctx_);
    install_filters(&host->fallback_path, ctx_);
    auto *handler = reinterpret_cast<HandlerLink *>(h2o_create_handler(path, sizeof(HandlerLink)));
    handler->super.on_req = &Server::on_req;
    handler->server = this;

    if (!cfg.certfile.empty() && !setup_tls(cfg, error)) return false;

    const bool cooperative = executor_.cooperative();
    unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
    unsigned loops = cfg.loop_threads > 0 ? cfg.loop_threads : cpus;
    if (cooperative && executor_.options().serial && loops > 1) {
        ctx_.log().info(fmt::format("A serial app under fibers runs on one event-loop thread (not {})", loops));
        loops = 1;
    }
    ctx_.set_loop_threads(loops);
    if (cooperative && ctx_.app() != nullptr) ctx_.app()->set_serialized_by_caller(true);

    executor_.start();
    for (unsigned i = 0; i < loops; ++i) {
        loops_.push_back(std::make_unique<Loop>(*this, i));
        if (!loops_.back()->start(listeners, error)) {
            stop_loops();
            executor_.stop(std::chrono::seconds(1));
            return false;
        }
    }
    ctx_.log().debug(fmt::format("h2o {}: {} listener(s), {} event-loop thread(s), handle() {}", H2O_VERSION,
                                 listeners.size(), loops,
                                 cooperative ? fmt::format("on fibers of {} KiB", cfg.stack_size / 1024)
                                             : fmt::format("on {} app thread(s)", std::max(1u, cfg.threads))));
    return true;
}

bool Server::setup_tls(const core::Config &cfg, std::string &error)
{
    ssl_ctx_ = SSL_CTX_new(TLS_server_method());
    if (ssl_ctx_ == nullptr) {
        error = "OpenSSL could not create a TLS context";
        return false;
    }
    SSL_CTX_set_min_proto_version(ssl_ctx_, TLS1_2_VERSION);
    SSL_CTX_set_options(ssl_ctx_, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ssl_ctx_, cfg.certfile.c_str()) != 1) {
        error = fmt::format("--certfile {}: not a PEM certificate chain OpenSSL can read", cfg.certfile);
        return false;
    }
    if (SSL_CTX_use_PrivateKey_file(ssl_ctx_, cfg.keyfile.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ssl_ctx_) != 1) {
        error = fmt::format("--keyfile {}: not a PEM private key for the certificate", cfg.keyfile);
        return false;
    }
    // ALPN: h2 first, then http/1.1 (libh2o's list); without ALPN a client gets HTTP/1.1.
    h2o_ssl_register_alpn_protocols(ssl_ctx_, h2o_alpn_protocols);
    return true;
}

void Server::stop_loops()
{
    for (auto &l : loops_) l->command(LoopCommand::exit);
    for (auto &l : loops_) l->join();
}

bool Server::stop()
{
    const core::Config &cfg = ctx_.config();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(cfg.graceful_timeout_ms);
    for (auto &l : loops_) l->command(LoopCommand::drain);
    live_.drain(ctx_.log(), deadline, cfg.graceful_timeout_ms);

    // Past the deadline: every wait ends with CWSGI_E_SHUTDOWN (LIFE-STOP-5) and every
    // connection is cut; the requests end through libh2o's dispose callbacks.
    live_.for_each_held([](Stream *s) { s->force_stop(); });
    executor_.hard_stop();
    for (auto &l : loops_) l->command(LoopCommand::cut);
    live_.wait_empty(std::chrono::steady_clock::now() + std::chrono::seconds(2));

    auto now = std::chrono::steady_clock::now();
    auto grace = std::max(std::chrono::milliseconds(1000),
                          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now));
    const bool pool_done = executor_.stop(grace);
    stop_loops();
    if (!pool_done) {
        ctx_.log().error("App threads still busy after the graceful stop; leaving them behind");
        return false;
    }
    return true;
}

} // namespace cwsgi::adapters::h2o
