// context.cc: the process-wide Context and the API table handed to the app.
//
// Every table function is a small trampoline: it checks the handle (a stale or foreign
// pointer returns CWSGI_E_INVAL instead of touching memory, RESP-STATE-1) and forwards to the
// request's state machine in request.cc.
#include "context.hh"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "app.hh"
#include "probe.hh"
#include "request.hh"

namespace cwsgi::core {

namespace {

std::atomic<Context *> g_current{nullptr};

Request *live(cwsgi_request *r, const char *fn)
{
    Request *req = Request::from(r);
    if (req == nullptr) {
        if (Context *ctx = Context::current()) {
            ctx->log().error(fmt::format("{}: invalid or finished request handle (RESP-STATE-1)", fn));
        }
    }
    return req;
}

int32_t api_environ_get(cwsgi_request *r, const char *key, cwsgi_str *out)
{
    Request *q = live(r, "environ_get");
    return q ? q->environ_get(key, out) : CWSGI_E_INVAL;
}
int32_t api_environ_at(cwsgi_request *r, size_t i, cwsgi_str *k, cwsgi_str *v)
{
    Request *q = live(r, "environ_at");
    return q ? q->environ_at(i, k, v) : CWSGI_E_INVAL;
}
int32_t api_header_at(cwsgi_request *r, size_t i, cwsgi_str *n, cwsgi_str *v)
{
    Request *q = live(r, "header_at");
    return q ? q->header_at(i, n, v) : CWSGI_E_INVAL;
}
int32_t api_header_find(cwsgi_request *r, const char *name, size_t nth, cwsgi_str *v)
{
    Request *q = live(r, "header_find");
    return q ? q->header_find(name, nth, v) : CWSGI_E_INVAL;
}
int32_t api_request_info(cwsgi_request *r, cwsgi_request_info *info)
{
    Request *q = live(r, "request_info");
    return q ? q->request_info(info) : CWSGI_E_INVAL;
}
int64_t api_read(cwsgi_request *r, void *buf, size_t cap)
{
    Request *q = live(r, "read");
    return q ? q->read(buf, cap) : int64_t{CWSGI_E_INVAL};
}
int32_t api_start_response(cwsgi_request *r, uint32_t status, const char *reason, const cwsgi_header *h, size_t n,
                           uint32_t flags)
{
    Request *q = live(r, "start_response");
    return q ? q->start_response(status, reason, h, n, flags) : CWSGI_E_INVAL;
}
int32_t api_write(cwsgi_request *r, const void *data, size_t len)
{
    Request *q = live(r, "write");
    return q ? q->write(data, len) : CWSGI_E_INVAL;
}
int32_t api_send_file(cwsgi_request *r, int fd, int64_t off, int64_t count)
{
    Request *q = live(r, "send_file");
    return q ? q->send_file(fd, off, count) : CWSGI_E_INVAL;
}
int32_t api_finish(cwsgi_request *r)
{
    Request *q = live(r, "finish");
    return q ? q->finish() : CWSGI_E_INVAL;
}
int32_t api_send_informational(cwsgi_request *r, uint32_t status, const cwsgi_header *h, size_t n)
{
    Request *q = live(r, "send_informational");
    return q ? q->send_informational(status, h, n) : CWSGI_E_INVAL;
}
int32_t api_is_disconnected(cwsgi_request *r)
{
    Request *q = live(r, "is_disconnected");
    return q ? q->is_disconnected() : 1;
}
void *api_alloc(cwsgi_request *r, size_t size)
{
    Request *q = live(r, "alloc");
    return q ? q->alloc(size) : nullptr;
}
int32_t api_log(cwsgi_request *r, uint32_t level, const char *msg, size_t len)
{
    Context *ctx = Context::current();
    if (ctx == nullptr || (msg == nullptr && len > 0)) return CWSGI_E_INVAL;
    if (level < CWSGI_LOG_DEBUG || level > CWSGI_LOG_CRITICAL) return CWSGI_E_INVAL;
    if (!ctx->log().enabled(level)) return CWSGI_OK;
    Request *q = r ? Request::from(r) : nullptr;
    std::string_view text(msg ? msg : "", len);
    if (q) {
        ctx->log().write(level, fmt::format("[req {}] {}", q->id(), text));
    } else {
        ctx->log().write(level, text);
    }
    return CWSGI_OK;
}
void api_set_user_data(cwsgi_request *r, void *p)
{
    if (Request *q = live(r, "set_user_data")) q->set_user_data(p);
}
void *api_get_user_data(cwsgi_request *r)
{
    Request *q = live(r, "get_user_data");
    return q ? q->get_user_data() : nullptr;
}
int32_t api_server_info(cwsgi_server_info *info)
{
    Context *ctx = Context::current();
    return ctx ? ctx->fill_server_info(info) : CWSGI_E_STATE;
}
int32_t api_is_shutting_down(void)
{
    Context *ctx = Context::current();
    return ctx && ctx->shutting_down() ? 1 : 0;
}

int32_t api_wait_fd(cwsgi_request *r, int fd, uint32_t events, int32_t timeout_ms)
{
    Request *q = live(r, "wait_fd");
    return q ? q->wait_fd(fd, events, timeout_ms) : CWSGI_E_INVAL;
}

// LIFE-SET-1 (since 1.2): the app's own settings, those of the configuration this process was
// started with. The Context copies its Config once and never changes it, so the strings stay
// put for the process's life (LIFE-SET-3).
int32_t api_setting_get(const char *key, cwsgi_str *value)
{
    Context *ctx = Context::current();
    if (ctx == nullptr || key == nullptr || value == nullptr) return CWSGI_E_INVAL;
    for (const auto &[k, v] : ctx->config().app_settings) {
        if (k == key) {
            *value = {v.c_str(), v.size()};
            return CWSGI_OK;
        }
    }
    return CWSGI_E_NOTFOUND;
}

int32_t api_setting_at(size_t index, cwsgi_str *key, cwsgi_str *value)
{
    Context *ctx = Context::current();
    if (ctx == nullptr || key == nullptr || value == nullptr) return CWSGI_E_INVAL;
    const auto &settings = ctx->config().app_settings;
    if (index >= settings.size()) return CWSGI_E_NOTFOUND;
    const auto &[k, v] = settings[index];
    *key = {k.c_str(), k.size()};
    *value = {v.c_str(), v.size()};
    return CWSGI_OK;
}

int32_t ext_trailer_at(cwsgi_request *r, size_t i, cwsgi_str *n, cwsgi_str *v)
{
    Request *q = live(r, "trailer_at");
    return q ? q->trailer_at(i, n, v) : CWSGI_E_INVAL;
}
const cwsgi_ext_request_trailers kTrailersExt = {sizeof(cwsgi_ext_request_trailers), 1, ext_trailer_at};

const void *api_get_extension(const char *name, uint32_t min_version)
{
    Context *ctx = Context::current();
    if (ctx == nullptr || name == nullptr) return nullptr;
    // EXT-2: an extension is offered only when the adapter declared the capability behind it.
    if (std::strcmp(name, CWSGI_EXT_REQUEST_TRAILERS) == 0 && min_version <= 1 &&
        (ctx->capabilities() & CWSGI_CAP_REQUEST_TRAILERS)) {
        return &kTrailersExt;
    }
    return nullptr;
}

} // namespace

namespace detail {
const WorkerProbe *g_worker_probe = nullptr;
}

void set_worker_probe(const WorkerProbe *probe) { detail::g_worker_probe = probe; }

cwsgi_server_api make_api_table(uint64_t capabilities)
{
    cwsgi_server_api api{};
    api.struct_size = sizeof(cwsgi_server_api);
    api.abi_major = CWSGI_ABI_MAJOR;
    api.abi_minor = CWSGI_ABI_MINOR;
    api.capabilities = capabilities;
    api.environ_get = api_environ_get;
    api.environ_at = api_environ_at;
    api.header_at = api_header_at;
    api.header_find = api_header_find;
    api.request_info = api_request_info;
    api.read = api_read;
    api.start_response = api_start_response;
    api.write = api_write;
    api.send_file = api_send_file;
    api.finish = api_finish;
    api.send_informational = api_send_informational;
    api.is_disconnected = api_is_disconnected;
    api.alloc = api_alloc;
    api.log = api_log;
    api.set_user_data = api_set_user_data;
    api.get_user_data = api_get_user_data;
    api.server_info = api_server_info;
    api.is_shutting_down = api_is_shutting_down;
    api.get_extension = api_get_extension;
    api.wait_fd = api_wait_fd;
    api.setting_get = api_setting_get;
    api.setting_at = api_setting_at;
    return api;
}

bool parse_worker_class(const std::string &name, std::optional<ExecMode> &out)
{
    if (name.empty() || name == "auto") {
        out.reset();
    } else if (name == "gthread" || name == "threads") {
        out = ExecMode::threads;
    } else if (name == "gevent" || name == "cooperative") {
        out = ExecMode::cooperative;
    } else if (name == "sync") {
        out = ExecMode::sync;
    } else {
        return false;
    }
    return true;
}

const char *exec_mode_name(ExecMode mode)
{
    return mode == ExecMode::cooperative ? "cooperative" : mode == ExecMode::sync ? "sync" : "threads";
}

const char *worker_class_name(ExecMode mode)
{
    return mode == ExecMode::cooperative ? "gevent" : mode == ExecMode::sync ? "sync" : "gthread";
}

std::string capabilities_to_string(uint64_t caps)
{
    static const std::pair<uint64_t, const char *> kNames[] = {
        {CWSGI_CAP_SENDFILE, "sendfile"},
        {CWSGI_CAP_INFORMATIONAL, "informational"},
        {CWSGI_CAP_REQUEST_TRAILERS, "request-trailers"},
        {CWSGI_CAP_DISCONNECT, "disconnect"},
        {CWSGI_CAP_HTTP2, "http2"},
        {CWSGI_CAP_TLS, "tls"},
        {CWSGI_CAP_PIPELINING, "pipelining"},
        {CWSGI_CAP_MULTIPROCESS, "multiprocess"},
        {CWSGI_CAP_THREADS, "threads"},
    };
    std::string out;
    for (auto &[bit, name] : kNames) {
        if (caps & bit) {
            if (!out.empty()) out += ", ";
            out += name;
        }
    }
    return out.empty() ? "none" : out;
}

namespace {

// LIFE-ARB-18: with more than one worker configured the app runs in several processes at once,
// which CWSGI_CAP_MULTIPROCESS says (gunicorn's wsgi.multiprocess, PEP 3333). An adapter that
// runs the app in several processes by itself declares the bit in its own capabilities.
uint64_t with_process_model(uint64_t adapter_caps, const Config &config)
{
    uint64_t caps = adapter_caps | (config.workers > 1 ? CWSGI_CAP_MULTIPROCESS : 0);
    // THR-10: an operator's -k sync is known before the app's entry call sees the table.
    // (--threads N > 1 makes it gthread: choose_exec_mode.)
    if (config.worker_class == ExecMode::sync && !(config.threads_given && config.threads > 1)) {
        caps &= ~CWSGI_CAP_THREADS;
    }
    return caps;
}

} // namespace

Context::Context(Config config, std::string adapter_name, uint64_t capabilities)
    : config_(std::move(config)), adapter_name_(std::move(adapter_name)),
      server_software_(fmt::format("cwsgi-serve/{} ({})", CWSGI_VERSION_STRING, adapter_name_)),
      api_(make_api_table(with_process_model(capabilities, config_)))
{
    log_.set_level(config_.log_level);
    if (::pipe2(stop_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
        stop_pipe_[0] = stop_pipe_[1] = -1;
    }
}

void Context::set_exec_mode(ExecMode mode)
{
    exec_mode_ = mode;
    if (mode == ExecMode::sync) api_.capabilities &= ~CWSGI_CAP_THREADS; // THR-10
}

Context::~Context()
{
    if (current() == this) set_current(nullptr);
    for (int fd : stop_pipe_) {
        if (fd >= 0) ::close(fd);
    }
}

Context *Context::current() { return g_current.load(std::memory_order_acquire); }
void Context::set_current(Context *ctx) { g_current.store(ctx, std::memory_order_release); }

void Context::request_stop()
{
    shutting_down_.store(true, std::memory_order_release);
    if (stop_pipe_[1] >= 0) {
        char b = 1;
        ssize_t n = ::write(stop_pipe_[1], &b, 1); // async-signal-safe
        (void)n;
    }
}

bool Context::wait_for_stop(int timeout_ms) const
{
    if (shutting_down()) return true;
    struct pollfd p = {stop_pipe_[0], POLLIN, 0};
    int rc;
    do {
        rc = ::poll(&p, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR && !shutting_down());
    return shutting_down();
}

int32_t Context::fill_server_info(cwsgi_server_info *info) const
{
    if (info == nullptr || info->struct_size < sizeof(uint32_t)) return CWSGI_E_INVAL;
    // ABI-STRUCT-2: fill what both sides know, zero the rest of the caller's struct.
    cwsgi_server_info full{};
    full.struct_size = info->struct_size;
    full.worker_id = worker_id_;
    full.workers = config_.workers;
    full.threads = exec_mode_ == ExecMode::sync ? 1 : config_.threads; // THR-10: one at a time
    full.limit_request_body = config_.limits.request_body;
    full.limit_request_line = config_.limits.request_line;
    full.limit_request_fields = config_.limits.request_fields;
    full.limit_request_field_size = config_.limits.request_field_size;
    full.graceful_timeout_ms = config_.graceful_timeout_ms;
    full.adapter = {adapter_name_.c_str(), adapter_name_.size()};
    full.server_software = {server_software_.c_str(), server_software_.size()};
    // LIFE-INFO-2 (since 1.1): the execution mode the app runs under.
    full.execution = exec_mode_ == ExecMode::cooperative ? CWSGI_EXEC_COOPERATIVE : CWSGI_EXEC_THREADS;
    full.loop_threads = loop_threads_;
    full.stack_size = exec_mode_ == ExecMode::cooperative ? config_.stack_size : 0;
    size_t n = std::min<size_t>(info->struct_size, sizeof full);
    uint32_t caller_size = info->struct_size;
    std::memcpy(info, &full, n);
    if (caller_size > sizeof full) {
        std::memset(reinterpret_cast<char *>(info) + sizeof full, 0, caller_size - sizeof full);
    }
    info->struct_size = caller_size;
    return CWSGI_OK;
}

} // namespace cwsgi::core
