// test_h2o.cc: what is specific to the libh2o adapter, over a real socket: the smuggling-class
// heads that libh2o 2.2.5 lets through and the adapter refuses from its own parse of the raw
// head, and the chunked framing the adapter writes itself (libh2o's chunked filter would close
// instead for any status but 200). The conformance suite covers what every adapter shares.
// Each test names the spec rule.
#include "cmocka.hh"

#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "core/app.hh"
#include "core/context.hh"
#include "core/listen.hh"
#include "http_client.hh"
#include "h2o/h2o.hh"

using namespace cwsgi;
using cwsgi::testing::raw_exchange;

namespace {

// ---- over a socket ------------------------------------------------------------------------

const cwsgi_server_api *g_api;
int g_handled;

int32_t app_init(const cwsgi_server_api *api, void **state, char *, size_t)
{
    g_api = api;
    *state = nullptr;
    return CWSGI_OK;
}

// Reads the body, answers 200 with its length; "/stream" answers 201 with a body of unknown
// length in two writes (chunked on HTTP/1.1).
int32_t app_handle(void *, cwsgi_request *req)
{
    __atomic_add_fetch(&g_handled, 1, __ATOMIC_SEQ_CST);
    cwsgi_str path{};
    if (g_api->environ_get(req, "PATH_INFO", &path) == CWSGI_OK && std::string_view(path.ptr, path.len) == "/stream") {
        int32_t rc = g_api->start_response(req, 201, nullptr, nullptr, 0, 0);
        if (rc == CWSGI_OK) rc = g_api->write(req, "abc", 3);
        if (rc == CWSGI_OK) rc = g_api->write(req, "defgh", 5);
        return rc;
    }
    if (g_api->environ_get(req, "PATH_INFO", &path) == CWSGI_OK && std::string_view(path.ptr, path.len) == "/names") {
        // A token libh2o knows, an unknown name, duplicates, and a name longer than the
        // adapter's 64-byte lowercasing buffer on the stack.
        static const char k_long[] = "X-A-Name-Longer-Than-Sixty-Four-Bytes-So-It-Is-Lowercased-In-The-Pool";
        const cwsgi_header h[] = {
            {"Content-TYPE", 12, "text/plain", 10}, {"X-Mixed-Case", 12, "m", 1}, {"Set-Cookie", 10, "a=1", 3},
            {k_long, sizeof k_long - 1, "long", 4}, {"set-cookie", 10, "b=2", 3}, {"Content-Length", 14, "2", 1},
        };
        int32_t rc = g_api->start_response(req, 200, nullptr, h, sizeof h / sizeof h[0], 0);
        return rc == CWSGI_OK ? g_api->write(req, "ok", 2) : rc;
    }
    char buf[4096];
    int64_t total = 0, n;
    while ((n = g_api->read(req, buf, sizeof buf)) > 0) total += n;
    if (n < 0) return static_cast<int32_t>(n);
    std::string body = std::to_string(total);
    std::string len = std::to_string(body.size());
    cwsgi_header h[] = {{"Content-Length", 14, len.c_str(), len.size()}};
    int32_t rc = g_api->start_response(req, 200, nullptr, h, 1, 0);
    if (rc != CWSGI_OK) return rc;
    return g_api->write(req, body.data(), body.size());
}

const cwsgi_app_desc k_desc = {sizeof(cwsgi_app_desc),
                               CWSGI_ABI_MAJOR,
                               0,
                               "h2o-test",
                               "1",
                               CWSGI_THREADS_SAFE,
                               0,
                               0,
                               nullptr,
                               app_init,
                               nullptr,
                               nullptr,
                               nullptr,
                               app_handle,
                               nullptr,
                               0,
                               0};

int32_t app_entry(const cwsgi_server_api *, const cwsgi_app_desc **out)
{
    *out = &k_desc;
    return CWSGI_OK;
}

/// An h2o adapter serving the test app on a free loopback port, in this process.
struct Served {
    std::unique_ptr<core::Context> ctx;
    std::unique_ptr<core::App> app;
    std::vector<core::Listener> listeners;
    std::thread thread;
    int port = 0;
};

int setup(void **state)
{
    auto s = std::make_unique<Served>();
    core::Config cfg;
    cfg.threads = 2;
    cfg.loop_threads = 2;
    cfg.graceful_timeout_ms = 2000;
    cfg.log_level = CWSGI_LOG_ERROR;
    s->ctx = std::make_unique<core::Context>(cfg, "h2o", adapters::h2o_ops().capabilities);
    core::Context::set_current(s->ctx.get());
    std::string error;
    s->app = core::App::from_entry(app_entry, s->ctx->api(), error);
    if (!s->app || s->app->init(error) != CWSGI_OK) return -1;
    s->ctx->set_app(s->app.get());
    if (!core::open_listeners({"127.0.0.1:0"}, s->listeners, error)) return -1;
    s->port = core::listener_port(s->listeners[0]);
    Served *raw = s.get();
    s->thread = std::thread([raw] { adapters::h2o_ops().serve(*raw->ctx, raw->listeners); });
    *state = s.release();
    return 0;
}

int teardown(void **state)
{
    std::unique_ptr<Served> s(static_cast<Served *>(*state));
    s->ctx->request_stop();
    s->thread.join();
    core::close_listeners(s->listeners);
    s->ctx->set_app(nullptr);
    return 0;
}

bool starts(const std::string &s, const char *prefix) { return s.rfind(prefix, 0) == 0; }

void test_h2o__serves_a_body(void **state) // rule: INPUT-READ-1
{
    auto *s = static_cast<Served *>(*state);
    std::string r = raw_exchange(s->port, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    assert_true(starts(r, "HTTP/1.1 200 OK\r\n"));
    assert_true(r.size() >= 1 && r.substr(r.size() - 1) == "5");
}

void test_h2o__smuggling_heads_get_400(void **state) // rule: REQ-BODY-2
{
    // libh2o 2.2.5 serves each of these (measured): it reads the first Content-Length, keeps
    // the last Host, and decodes chunked in HTTP/1.0. The core's checks on the adapter's own
    // parse of the raw head refuse them before the app.
    auto *s = static_cast<Served *>(*state);
    int before = __atomic_load_n(&g_handled, __ATOMIC_SEQ_CST);
    const char *cases[] = {
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",             // REQ-BODY-2
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",                                                   // REQ-HDR-3
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",                   // REQ-BODY-3
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", // REQ-BODY-6
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        std::string r = raw_exchange(s->port, cases[i]);
        if (!starts(r, "HTTP/1.1 400 ") || r.find("400 Bad Request\n") == std::string::npos) {
            print_error("case %zu answered: %s\n", i, r.substr(0, 80).c_str());
            fail();
        }
    }
    assert_int_equal(__atomic_load_n(&g_handled, __ATOMIC_SEQ_CST), before);
}

void test_h2o__chunked_for_any_status(void **state) // rule: RESP-FRAME-3
{
    // A 201 of unknown length on HTTP/1.1 is chunked and keeps the connection: the pipelined
    // second request is answered on it.
    auto *s = static_cast<Served *>(*state);
    std::string r =
        raw_exchange(s->port, "GET /stream HTTP/1.1\r\nHost: a\r\n\r\nGET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(starts(r, "HTTP/1.1 201 "));
    size_t second = r.find("HTTP/1.1 201 ", 1);
    assert_true(second != std::string::npos);
    for (std::string one : {r.substr(0, second), r.substr(second)}) {
        assert_true(one.find("\r\nTransfer-Encoding: chunked\r\n") != std::string::npos);
        // The chunks carry "abc" then "defgh" (one chunk or two, as the writes met the loop)
        // and end with the last chunk.
        size_t body = one.find("\r\n\r\n") + 4;
        std::string chunks = one.substr(body);
        assert_true(chunks == "3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n" || chunks == "8\r\nabcdefgh\r\n0\r\n\r\n");
    }
}

void test_h2o__response_fields_in_order_as_spelled(void **state) // rule: RESP-HDR-4
{
    // Over HTTP/1.1 the adapter keeps the app's spelling of every name (libh2o's orig_name),
    // tokens and other names alike, in the app's order, duplicates kept.
    auto *s = static_cast<Served *>(*state);
    std::string r = raw_exchange(s->port, "GET /names HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert_true(starts(r, "HTTP/1.1 200 "));
    const char *want[] = {
        "\r\nContent-TYPE: text/plain\r\n",
        "\r\nX-Mixed-Case: m\r\n",
        "\r\nSet-Cookie: a=1\r\n",
        "\r\nX-A-Name-Longer-Than-Sixty-Four-Bytes-So-It-Is-Lowercased-In-The-Pool: long\r\n",
        "\r\nset-cookie: b=2\r\n",
    };
    size_t at = 0;
    for (const char *w : want) {
        size_t found = r.find(w, at);
        if (found == std::string::npos) {
            print_error("missing, or out of order: %s\nin: %s\n", w, r.c_str());
            fail();
        }
        at = found + 1;
    }
    assert_true(r.size() >= 2 && r.substr(r.size() - 2) == "ok");
}

} // namespace

int main()
{
    const struct CMUnitTest wire[] = {
        cmocka_unit_test(test_h2o__serves_a_body),
        cmocka_unit_test(test_h2o__smuggling_heads_get_400),
        cmocka_unit_test(test_h2o__chunked_for_any_status),
        cmocka_unit_test(test_h2o__response_fields_in_order_as_spelled),
    };
    return cmocka_run_group_tests_name("wire", wire, setup, teardown);
}
