// testhost.cc: the in-process test host (include/cwsgi/testhost.h).
//
// It is an adapter whose "network" is memory: MemoryExchange records what would go on the
// wire. Requests go through the same validate_request_head and Request state machine as on
// every real adapter, so tests written against it hold for the servers too.
#include "cwsgi/testhost.h"

#include <cstddef>
#include <cstring>
#include <map>
#include <mutex>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "core/app.hh"
#include "core/context.hh"
#include "core/exchange.hh"
#include "core/http.hh"
#include "core/request.hh"

using namespace cwsgi::core;

namespace {

constexpr uint64_t kDefaultCaps = CWSGI_CAP_INFORMATIONAL | CWSGI_CAP_DISCONNECT | CWSGI_CAP_REQUEST_TRAILERS;

void set_error(char *err, size_t errlen, const std::string &msg)
{
    if (err == nullptr || errlen == 0) return;
    size_t n = std::min(errlen - 1, msg.size());
    std::memcpy(err, msg.data(), n);
    err[n] = '\0';
}

class MemoryExchange final : public Exchange {
public:
    MemoryExchange(std::string body, size_t piece, int64_t disconnect_after, int32_t read_error)
        : body_(std::move(body)), piece_(piece), disconnect_after_(disconnect_after), read_error_(read_error)
    {
    }

    void continue_body() override { continue_sent_ = true; }

    int64_t read_body(void *buf, size_t cap) override
    {
        if (disconnected_) return CWSGI_E_DISCONNECTED;
        size_t left = body_.size() - pos_;
        if (left == 0 && read_error_ < 0) return read_error_;
        size_t n = std::min(left, cap);
        if (piece_ > 0) n = std::min(n, piece_);
        std::memcpy(buf, body_.data() + pos_, n);
        pos_ += n;
        return static_cast<int64_t>(n);
    }

    const std::vector<Header> *request_trailers() override { return &trailers_; }

    int32_t send_informational(uint32_t, const std::vector<Header> &) override
    {
        ++informational_;
        return CWSGI_OK;
    }

    int32_t commit(const ResponseHead &head) override
    {
        // The head's views live as long as the Request; the response box outlives it.
        status_ = head.status;
        reason_ = std::string(head.reason);
        headers_.clear();
        for (const Field &h : head.headers) headers_.push_back({std::string(h.name), std::string(h.value)});
        framing_ = head.framing;
        committed_ = true;
        return disconnected_ ? CWSGI_E_DISCONNECTED : CWSGI_OK;
    }

    int32_t send_body(const void *data, size_t len) override
    {
        if (disconnected_) return CWSGI_E_DISCONNECTED;
        const char *p = static_cast<const char *>(data);
        if (disconnect_after_ > 0 && out_.size() + len >= static_cast<size_t>(disconnect_after_)) {
            out_.append(p, static_cast<size_t>(disconnect_after_) - out_.size());
            disconnected_ = true;
            return CWSGI_E_DISCONNECTED;
        }
        out_.append(p, len);
        return CWSGI_OK;
    }

    int32_t end_body() override
    {
        ended_ = true;
        return disconnected_ ? CWSGI_E_DISCONNECTED : CWSGI_OK;
    }
    void abort_body() override { aborted_ = true; }
    bool disconnected() const override { return disconnected_; }

    std::string body_;
    size_t piece_;
    int64_t disconnect_after_;
    int32_t read_error_;
    size_t pos_ = 0;
    std::vector<Header> trailers_;
    bool continue_sent_ = false;
    uint32_t informational_ = 0;
    uint32_t status_ = 0;
    std::string reason_;
    std::vector<Header> headers_;
    FramingDecision framing_;
    bool committed_ = false;
    std::string out_;
    bool ended_ = false;
    bool aborted_ = false;
    bool disconnected_ = false;
};

// The C response plus the storage its pointers point into.
struct ResponseBox {
    cwsgi_test_response c{};
    std::string reason;
    std::vector<Header> headers;
    std::vector<cwsgi_header> c_headers;
    std::string body;

    void publish()
    {
        c.struct_size = sizeof c;
        c.reason = reason.c_str();
        c_headers.clear();
        for (const Header &h : headers) {
            c_headers.push_back({h.name.c_str(), h.name.size(), h.value.c_str(), h.value.size()});
        }
        c.headers = c_headers.data();
        c.n_headers = c_headers.size();
        c.body = body.c_str();
        c.body_len = body.size();
    }
};

// Responses handed out, by the address of their C part. A map instead of a cast from the C
// struct to its box: the box holds std::string members, so it is not standard-layout.
std::mutex g_boxes_mutex;
std::map<const cwsgi_test_response *, std::unique_ptr<ResponseBox>> g_boxes;

cwsgi_test_response *hand_out(std::unique_ptr<ResponseBox> box)
{
    box->publish();
    cwsgi_test_response *c = &box->c;
    std::lock_guard<std::mutex> lock(g_boxes_mutex);
    g_boxes.emplace(c, std::move(box));
    return c;
}

} // namespace

struct cwsgi_testhost {
    std::unique_ptr<Context> ctx;
    std::unique_ptr<App> app;
    std::string description;
    bool worker_started = false;
};

namespace {

cwsgi_testhost *open_host(cwsgi_entry_fn entry, const char *path, const cwsgi_testhost_options *opts, char *err,
                          size_t errlen)
{
    if (Context::current() != nullptr) {
        set_error(err, errlen, "a test host is already open in this process (close it first)");
        return nullptr;
    }
    Config cfg;
    cfg.threads = 1;
    cfg.log_level = CWSGI_LOG_WARNING;
    uint64_t caps = kDefaultCaps;
    std::string error_log;
    if (opts) {
        if (opts->log_level) cfg.log_level = opts->log_level;
        if (opts->limit_request_body > 0) cfg.limits.request_body = opts->limit_request_body;
        if (opts->script_name) cfg.script_name = opts->script_name;
        if (opts->capabilities) caps = opts->capabilities;
        if (opts->error_log_path) error_log = opts->error_log_path;
        // A field added after 1.0 is read only when the caller's struct has it (ABI-STRUCT-3).
        if (opts->struct_size >= offsetof(cwsgi_testhost_options, settings) + sizeof opts->settings &&
            opts->settings != nullptr) {
            for (const char *const *s = opts->settings; *s; ++s) {
                const char *eq = std::strchr(*s, '=');
                if (eq == nullptr || eq == *s) {
                    set_error(err, errlen, std::string("setting '") + *s + "' is not \"key=value\" (LIFE-SET-4)");
                    return nullptr;
                }
                std::string key(*s, static_cast<size_t>(eq - *s));
                for (const auto &[k, v] : cfg.app_settings) {
                    if (k == key) {
                        set_error(err, errlen, "setting '" + key + "' is given twice (LIFE-SET-4)");
                        return nullptr;
                    }
                }
                cfg.app_settings.emplace_back(std::move(key), std::string(eq + 1));
            }
        }
    }
    while (!cfg.script_name.empty() && cfg.script_name.back() == '/') cfg.script_name.pop_back();
    auto host = std::make_unique<cwsgi_testhost>();
    host->ctx = std::make_unique<Context>(cfg, "testhost", caps);
    Context::set_current(host->ctx.get());
    std::string error;
    if (!error_log.empty() && !host->ctx->log().open(error_log, error)) {
        set_error(err, errlen, error);
        return nullptr;
    }
    host->app = entry ? App::from_entry(entry, host->ctx->api(), error) : App::load(path, host->ctx->api(), error);
    if (!host->app || host->app->init(error) != CWSGI_OK) {
        set_error(err, errlen, error);
        return nullptr; // ~Context clears the current pointer
    }
    host->ctx->set_app(host->app.get());
    host->ctx->set_worker_id(1);
    if (host->app->worker_start(1, error) != CWSGI_OK) {
        set_error(err, errlen, error);
        host->app->destroy();
        return nullptr;
    }
    host->worker_started = true;
    host->description = host->app->describe() + "server caps:    " + capabilities_to_string(caps) + "\n";
    return host.release();
}

} // namespace

extern "C" {

cwsgi_testhost *cwsgi_testhost_open(const char *path, const cwsgi_testhost_options *opts, char *err, size_t errlen)
{
    if (path == nullptr) {
        set_error(err, errlen, "no app path given");
        return nullptr;
    }
    return open_host(nullptr, path, opts, err, errlen);
}

cwsgi_testhost *cwsgi_testhost_open_entry(cwsgi_entry_fn entry, const cwsgi_testhost_options *opts, char *err,
                                          size_t errlen)
{
    if (entry == nullptr) {
        set_error(err, errlen, "no entry function given");
        return nullptr;
    }
    return open_host(entry, nullptr, opts, err, errlen);
}

int32_t cwsgi_testhost_request(cwsgi_testhost *host, const cwsgi_test_request *req, cwsgi_test_response **out)
{
    if (host == nullptr || req == nullptr || out == nullptr || req->struct_size < sizeof(uint32_t)) {
        return CWSGI_E_INVAL;
    }
    *out = nullptr;
    RequestHead head;
    head.method = head.keep(req->method ? req->method : "GET");
    head.target = head.keep(req->target ? req->target : "/");
    std::string_view proto = req->protocol ? req->protocol : "HTTP/1.1";
    if (proto == "HTTP/1.0") {
        head.http_minor = 0;
    } else if (proto == "HTTP/2") {
        head.http_major = 2;
        head.http_minor = 0;
    } else if (proto != "HTTP/1.1") {
        return CWSGI_E_INVAL;
    }
    bool has_host = false, has_length = false;
    for (size_t i = 0; i < req->n_headers; ++i) {
        std::string_view name(req->headers[i].name, req->headers[i].name_len);
        if (iequals(name, "host")) has_host = true;
        if (iequals(name, "content-length") || iequals(name, "transfer-encoding")) has_length = true;
    }
    if (!has_host) {
        // Host first, as a client sends it; HTTP/2 carries it as :authority.
        if (head.http_major == 2) {
            head.authority = "localhost";
        } else {
            head.add_header("Host", "localhost");
        }
    }
    for (size_t i = 0; i < req->n_headers; ++i) {
        const cwsgi_header &h = req->headers[i];
        std::string_view name(h.name, h.name_len), value(h.value, h.value_len);
        // HTTP/2 carries the first Host as the :authority pseudo-header; a later one is sent
        // as a host field, the way a client can send both (ENV-HDR-1, REQ-H2-1).
        if (head.http_major == 2 && iequals(name, "host") && head.authority.empty()) {
            head.authority = head.keep(value);
            continue;
        }
        head.add_header(name, value);
    }
    if (!has_length && req->body_len > 0) {
        if (req->chunked && head.http_major == 1) {
            head.add_header("Transfer-Encoding", "chunked");
        } else if (!req->chunked) {
            head.add_header("Content-Length", std::to_string(req->body_len));
        }
    }
    head.remote_addr = "127.0.0.1";
    head.remote_port = "54321";
    head.local_addr = "127.0.0.1";
    head.local_port = "8000";

    auto box = std::make_unique<ResponseBox>();
    Context &ctx = *host->ctx;
    HeadCheck check = validate_request_head(head, ctx.config().limits);
    if (check.status != 0) {
        // The server answers by itself; the app never sees the request.
        ErrorResponse e = make_error_response(check.status);
        log_rejected(ctx, head, check, e.body.size());
        box->c.status = e.status;
        box->reason = e.reason;
        box->headers = e.headers;
        box->body = head.method == "HEAD" ? std::string() : e.body;
        box->c.framing = 1;
        box->c.outcome = CWSGI_OK;
        *out = hand_out(std::move(box));
        return CWSGI_OK;
    }
    std::string body(static_cast<const char *>(req->body ? req->body : ""), req->body ? req->body_len : 0);
    // Fields added after 1.0 of this struct are read only when the caller's struct has them.
    int32_t read_error = 0;
    if (req->struct_size >= offsetof(cwsgi_test_request, read_error) + sizeof req->read_error) {
        read_error = req->read_error;
    }
    MemoryExchange ex(std::move(body), req->read_piece, req->disconnect_after, read_error);
    if (req->struct_size >= offsetof(cwsgi_test_request, n_trailers) + sizeof req->n_trailers) {
        for (size_t i = 0; i < req->n_trailers; ++i) {
            const cwsgi_header &t = req->trailers[i];
            ex.trailers_.push_back({std::string(t.name, t.name_len), std::string(t.value, t.value_len)});
        }
    }
    RequestPtr request = Request::create(ctx, std::move(head), check, ex);
    if (!request) return CWSGI_E_NOMEM;
    request->run();
    request->complete(ex.disconnected_ ? CWSGI_E_DISCONNECTED : (ex.aborted_ ? CWSGI_E_IO : CWSGI_OK));

    box->c.status = ex.committed_ ? ex.status_ : 0;
    box->reason = ex.reason_;
    box->headers = ex.headers_;
    if (ex.committed_ && ex.framing_.framing == Framing::chunked) {
        box->headers.push_back({"Transfer-Encoding", "chunked"});
    }
    box->body = std::move(ex.out_);
    box->c.outcome = request->outcome();
    box->c.aborted = ex.aborted_ ? 1 : 0;
    box->c.continue_sent = ex.continue_sent_ ? 1 : 0;
    box->c.keep_alive = request->keep_alive() ? 1 : 0;
    box->c.informational = ex.informational_;
    box->c.framing = static_cast<uint32_t>(ex.framing_.framing);
    box->c.reached_app = request->reached_app() ? 1 : 0;
    box->c.handle_result = request->handle_result();
    *out = hand_out(std::move(box));
    return CWSGI_OK;
}

cwsgi_test_response *cwsgi_testhost_get(cwsgi_testhost *host, const char *target)
{
    cwsgi_test_request req{};
    req.struct_size = sizeof req;
    req.target = target;
    cwsgi_test_response *resp = nullptr;
    return cwsgi_testhost_request(host, &req, &resp) == CWSGI_OK ? resp : nullptr;
}

const char *cwsgi_test_response_header(const cwsgi_test_response *resp, const char *name)
{
    if (resp == nullptr || name == nullptr) return nullptr;
    for (size_t i = 0; i < resp->n_headers; ++i) {
        if (iequals(std::string_view(resp->headers[i].name, resp->headers[i].name_len), name)) {
            return resp->headers[i].value;
        }
    }
    return nullptr;
}

void cwsgi_test_response_free(cwsgi_test_response *resp)
{
    if (resp == nullptr) return;
    std::lock_guard<std::mutex> lock(g_boxes_mutex);
    g_boxes.erase(resp);
}

void cwsgi_testhost_close(cwsgi_testhost *host)
{
    if (host == nullptr) return;
    if (host->worker_started) host->app->worker_stop(1);
    host->app->destroy();
    host->ctx->set_app(nullptr);
    delete host;
}

const char *cwsgi_testhost_describe(const cwsgi_testhost *host) { return host ? host->description.c_str() : ""; }

} // extern "C"
