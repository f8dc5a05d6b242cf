// core_hello.cc: drives the shared core alone through N hello requests, the way an adapter
// does (head, validate_request_head, Request::create, run, complete), with an Exchange that
// drops what it is given. Under callgrind (bench/callgrind-hello.sh) the difference between N
// and 2N requests is the core's own cost per request, without any network library.
//
// Usage: bench_core_hello APP.so N
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/app.hh"
#include "core/context.hh"
#include "core/exchange.hh"
#include "core/http.hh"
#include "core/request.hh"

using namespace cwsgi::core;

namespace {

// What a real adapter does with the response, minus the wire: nothing.
class NullExchange final : public Exchange {
public:
    int64_t read_body(void *, size_t) override { return 0; }
    int32_t commit(const ResponseHead &) override { return CWSGI_OK; }
    int32_t send_body(const void *, size_t len) override
    {
        bytes += len;
        return CWSGI_OK;
    }
    int32_t end_body() override { return CWSGI_OK; }
    void abort_body() override {}
    bool disconnected() const override { return false; }
    size_t bytes = 0;
};

} // namespace

int main(int argc, char **argv)
{
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s APP.so N\n", argv[0]);
        return 2;
    }
    long n = std::atol(argv[2]);
    Config cfg;
    cfg.log_level = CWSGI_LOG_WARNING;
    Context ctx(cfg, "core_hello", CWSGI_CAP_THREADS);
    Context::set_current(&ctx);
    std::string error;
    auto app = App::load(argv[1], ctx.api(), error);
    if (!app || app->init(error) != CWSGI_OK || app->worker_start(1, error) != CWSGI_OK) {
        std::fprintf(stderr, "core_hello: %s\n", error.c_str());
        return 1;
    }
    ctx.set_app(app.get());
    NullExchange ex;
    for (long i = 0; i < n; ++i) {
        // The head a client sends with "GET / HTTP/1.1" and one Host field.
        // The head a client sends with "GET / HTTP/1.1" and one Host field, copied into the
        // head's arena as an adapter whose library reuses its buffers must.
        RequestHead head;
        head.method = head.keep("GET");
        head.target = head.keep("/");
        head.add_header("Host", "127.0.0.1:8000");
        head.remote_addr = head.keep("127.0.0.1");
        head.remote_port = head.keep("54321");
        head.local_addr = head.keep("127.0.0.1");
        head.local_port = head.keep("8000");
        HeadCheck check = validate_request_head(head, ctx.config().limits);
        RequestPtr req = Request::create(ctx, std::move(head), check, ex);
        if (!req) return 1;
        req->run();
        req->complete(CWSGI_OK);
    }
    app->worker_stop(1);
    app->destroy();
    ctx.set_app(nullptr);
    std::printf("core_hello: %ld requests, %zu body bytes\n", n, ex.bytes);
    return ex.bytes == static_cast<size_t>(n) * 14 ? 0 : 1;
}
