// server.cc: daemons, callbacks and the graceful stop of the libmicrohttpd adapter.
#include "server.hh"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "bridge.hh"
#include "core/app.hh"

namespace cwsgi::adapters::mhd {

namespace {

unsigned whole_seconds(uint32_t ms) { return std::max(1u, static_cast<unsigned>((ms + 999) / 1000)); }

// libmicrohttpd decodes the path in place for its own `url` argument; the core decodes the raw
// target itself, so skip that work.
size_t keep_uri(void *, MHD_Connection *, char *uri) { return std::strlen(uri); }

} // namespace

namespace {

exec::Executor::Options executor_options(core::Context &ctx)
{
    exec::Executor::Options o;
    o.mode = ctx.exec_mode();
    o.threads = std::max(1u, ctx.config().threads);
    o.stack_size = ctx.config().stack_size;
    o.serial = ctx.app() != nullptr && ctx.app()->desc().thread_safety == CWSGI_THREADS_SERIAL;
    // A stack overflow is reported on stderr and, when the error log is a file, there too.
    o.log_fd = ctx.log().fd() != 2 ? ctx.log().fd() : -1;
    return o;
}

} // namespace

Server::Server(core::Context &ctx) : ctx_(ctx), executor_(executor_options(ctx)) {}

Server::~Server()
{
    stop_daemons();
    executor_.stop(std::chrono::seconds(1));
}

bool Server::start(std::vector<core::Listener> &listeners, std::string &error)
{
    const core::Config &cfg = ctx_.config();
    app_has_request_end_ = ctx_.app() != nullptr && ctx_.app()->desc().on_request_end != nullptr;
    request_timeout_s_ = whole_seconds(cfg.client_timeout_ms);
    idle_timeout_s_ = whole_seconds(cfg.keepalive_ms);

    // Event-loop threads. In threads mode they only move bytes, so half the CPUs (the app
    // threads and the kernel's network work need the rest), and never more than app threads.
    // In cooperative mode the app runs on them too: every CPU. --loop-threads (or, for old
    // scripts, CWSGI_MHD_IO_THREADS) overrides the choice.
    const bool cooperative = executor_.cooperative();
    unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
    io_threads_ = cooperative ? cpus : std::clamp(cpus / 2, 1u, std::max(1u, cfg.threads));
    if (const char *env = std::getenv("CWSGI_MHD_IO_THREADS")) {
        io_threads_ = std::clamp(static_cast<unsigned>(std::strtoul(env, nullptr, 10)), 1u, 256u);
    }
    if (cfg.loop_threads > 0) io_threads_ = cfg.loop_threads;
    if (cooperative && executor_.options().serial && io_threads_ > 1) {
        // One handle at a time runs anyway (THR-8), and the turn then passes between fibers of
        // one thread, even for a request whose connection is already gone.
        ctx_.log().info(fmt::format("A serial app under fibers runs on one event-loop thread (not {})", io_threads_));
        io_threads_ = 1;
    }
    ctx_.set_loop_threads(io_threads_);
    // A SERIAL app under fibers is serialised by the execution layer's turn, which yields; the
    // loader's mutex would be held across a switch (THR-8).
    if (cooperative && ctx_.app() != nullptr) ctx_.app()->set_serialized_by_caller(true);

    // The connection's memory pool holds the request head (and each header's record), so it
    // must fit the heads the core's limits let through for the core to judge them (414/431)
    // rather than libmicrohttpd: a full request line and two fields of the largest size fit
    // with the default limits in libmicrohttpd's own default of 32 KiB. It is not made larger
    // than needed: libmicrohttpd zeroes the whole pool after every request.
    const core::Limits &lim = cfg.limits;
    size_t head = size_t{lim.request_line} + 2 * (size_t{lim.request_field_size} + 2) + size_t{lim.request_fields} * 64;
    memory_limit_ = std::clamp<size_t>(head + 4096, 32 * 1024, 1024 * 1024);

    executor_.start();
    for (core::Listener &l : listeners) {
        auto slot = std::make_unique<ListenerSlot>();
        slot->server = this;
        slot->listener = &l;
        slots_.push_back(std::move(slot));
        if (!start_daemon(*slots_.back(), error)) {
            stop_daemons();
            executor_.stop(std::chrono::seconds(1));
            return false;
        }
    }
    if (cooperative) {
        ctx_.log().debug(fmt::format("microhttpd: {} listener(s), {} event-loop thread(s) each running handle() on "
                                     "fibers of {} KiB, {} KiB per connection",
                                     slots_.size(), io_threads_, cfg.stack_size / 1024, memory_limit_ / 1024));
    } else {
        ctx_.log().debug(fmt::format("microhttpd: {} listener(s), {} event-loop thread(s) each, {} app thread(s), "
                                     "{} KiB per connection",
                                     slots_.size(), io_threads_, std::max(1u, cfg.threads), memory_limit_ / 1024));
    }
    return true;
}

bool Server::start_daemon(ListenerSlot &slot, std::string &error)
{
    const unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    slot.daemon =
        MHD_start_daemon(flags, 0, nullptr, nullptr, &Server::on_access, &slot,
                         // First, so that libmicrohttpd's complaints about later options reach our log too.
                         MHD_OPTION_EXTERNAL_LOGGER, &Server::on_mhd_log, this, MHD_OPTION_LISTEN_SOCKET,
                         static_cast<MHD_socket>(slot.listener->fd), MHD_OPTION_THREAD_POOL_SIZE, io_threads_,
                         MHD_OPTION_URI_LOG_CALLBACK, &Server::on_uri, &slot, MHD_OPTION_NOTIFY_COMPLETED,
                         &Server::on_completed, &slot, MHD_OPTION_NOTIFY_CONNECTION, &Server::on_connection, &slot,
                         MHD_OPTION_UNESCAPE_CALLBACK, &keep_uri, nullptr, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                         memory_limit_, MHD_OPTION_CONNECTION_TIMEOUT, idle_timeout_s_, MHD_OPTION_END);
    if (slot.daemon == nullptr) {
        error = fmt::format("libmicrohttpd could not start on {} (see the debug log for its reason)",
                            slot.listener->display);
        return false;
    }
    return true;
}

void Server::stop_daemons()
{
    for (auto &slot : slots_) {
        if (slot->daemon == nullptr) continue;
        // Quiesce first so that libmicrohttpd leaves the listening socket open: it belongs to
        // the core, which closes it (and unlinks unix socket files).
        MHD_quiesce_daemon(slot->daemon);
        MHD_stop_daemon(slot->daemon);
        slot->daemon = nullptr;
    }
}

bool Server::stop()
{
    const core::Config &cfg = ctx_.config();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(cfg.graceful_timeout_ms);
    // LIFE-STOP-1: stop accepting; connections already open still finish their requests, and
    // their responses carry "Connection: close" (the core sees ctx.shutting_down()).
    for (auto &slot : slots_) {
        if (slot->daemon != nullptr) MHD_quiesce_daemon(slot->daemon);
    }
    // A connection accepted just before the quiesce may not have shown its request yet: its
    // bytes are in the socket and libmicrohttpd reads them on its next turn. A quiet spell of
    // 50 ms with no new request comes before closing what is left (LiveSet::drain).
    live_.drain(ctx_.log(), deadline, cfg.graceful_timeout_ms, std::chrono::milliseconds(50));

    // LIFE-STOP-2: past the deadline. Nothing may suspend any more, and every suspended
    // connection is resumed so that libmicrohttpd can close it (MHD_stop_daemon aborts the
    // process when it finds a suspended connection).
    hard_stop_.store(true, std::memory_order_release);
    live_.for_each_held([](Bridge *b) { b->force_stop(); });
    // Only now that every request's reads and writes fail: a wait_fd ended first would let a
    // fiber write on as if nothing had happened.
    executor_.hard_stop(); // every wait_fd in progress returns CWSGI_E_SHUTDOWN (LIFE-STOP-5)
    stop_daemons();

    // The app threads finish what is queued (requests whose connection is gone fail fast with
    // CWSGI_E_DISCONNECTED) and exit.
    auto now = std::chrono::steady_clock::now();
    auto grace = std::max(std::chrono::milliseconds(1000),
                          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now));
    if (!executor_.stop(grace)) {
        ctx_.log().error("App threads still busy after the graceful stop; leaving them behind");
        return false;
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// libmicrohttpd callbacks

void *Server::on_uri(void *cls, const char *uri, MHD_Connection *conn)
{
    // Called once per request with the raw request-target, before libmicrohttpd splits off
    // the query and decodes it: the Bridge keeps it as REQUEST_URI. Its return value becomes
    // the request's context, handed back to every later callback of this request.
    auto *slot = static_cast<ListenerSlot *>(cls);
    const MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    Conn *c = info != nullptr ? static_cast<Conn *>(info->socket_context) : nullptr;
    if (c == nullptr) return nullptr; // the access handler then closes the connection
    Server *s = slot->server;
    if (s->request_timeout_s_ != s->idle_timeout_s_) {
        // From the request line on, the request gets --client-timeout to arrive (a stalled head or
        // body is answered 408); between requests the --keep-alive idle time applies.
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, s->request_timeout_s_);
    }
    auto bridge = std::make_unique<Bridge>(*s, c, uri);
    s->live().add(bridge.get());
    return bridge.release(); // owned by libmicrohttpd until on_completed
}

MHD_Result Server::on_access(void *, MHD_Connection *conn, const char *, const char *method, const char *version,
                             const char *upload, size_t *upload_size, void **con_cls)
{
    auto *b = static_cast<Bridge *>(*con_cls);
    if (b == nullptr) return MHD_NO;
    return b->on_access(conn, method, version, upload, upload_size);
}

void Server::on_completed(void *cls, MHD_Connection *conn, void **con_cls, MHD_RequestTerminationCode toe)
{
    auto *b = static_cast<Bridge *>(*con_cls);
    if (b == nullptr) return;
    *con_cls = nullptr;
    Server *s = static_cast<ListenerSlot *>(cls)->server;
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && s->request_timeout_s_ != s->idle_timeout_s_) {
        // Back to the keep-alive idle timeout until the next request starts.
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, s->idle_timeout_s_);
    }
    b->on_completed(toe);
    b->unref(); // libmicrohttpd's reference
}

void Server::on_connection(void *cls, MHD_Connection *conn, void **socket_context, MHD_ConnectionNotificationCode code)
{
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        auto c = std::make_unique<Conn>();
        c->slot = static_cast<ListenerSlot *>(cls);
        if (const MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD)) {
            c->fd = info->connect_fd;
        }
        *socket_context = c.release(); // freed on MHD_CONNECTION_NOTIFY_CLOSED
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        std::unique_ptr<Conn> c(static_cast<Conn *>(*socket_context));
        *socket_context = nullptr;
    }
}

void Server::on_mhd_log(void *cls, const char *format, va_list ap)
{
    // libmicrohttpd explains every connection it drops; that is debug detail, not an error
    // of the server.
    char buf[512];
    std::vsnprintf(buf, sizeof buf, format, ap);
    size_t n = std::strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = '\0';
    static_cast<Server *>(cls)->ctx_.log().debug(fmt::format("libmicrohttpd: {}", buf));
}

} // namespace cwsgi::adapters::mhd
