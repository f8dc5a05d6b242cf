// test_microhttpd.cc: what is specific to the libmicrohttpd adapter: the request-line and
// framing checks on libmicrohttpd's parse, and, over a real socket, the malformed heads that
// libmicrohttpd 0.9.75 accepts and the adapter must refuse (the conformance suite covers the
// behaviour every adapter shares). Each test names the spec rule. The FIFO's tests are in
// tests/lib/exec/test_byte_fifo.cc, with the FIFO.
#include "cmocka.hh"

#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "core/app.hh"
#include "core/context.hh"
#include "core/listen.hh"
#include "http_client.hh"
#include "microhttpd/mhd_head.hh"
#include "microhttpd/microhttpd.hh"

using namespace cwsgi;
using cwsgi::testing::raw_exchange;
using namespace cwsgi::adapters::mhd;

namespace {

// ---- unit tests --------------------------------------------------------------------------

void test_microhttpd__http_version(void **) // rule: REQ-LINE-2
{
    uint32_t major = 0, minor = 0;
    assert_true(parse_http_version("HTTP/1.1", major, minor));
    assert_int_equal(major, 1);
    assert_int_equal(minor, 1);
    assert_true(parse_http_version("HTTP/1.0", major, minor));
    assert_int_equal(minor, 0);
    assert_false(parse_http_version("HTTP/1.10", major, minor));
    assert_false(parse_http_version("FTP/1.1", major, minor));
    assert_false(parse_http_version(nullptr, major, minor));
}

void test_microhttpd__request_line_layout(void **) // rule: REQ-LINE-1
{
    // libmicrohttpd's in-place parse of "GET /a HTTP/1.1": NULs over the two spaces.
    char good[] = "GET\0/a\0HTTP/1.1";
    assert_null(check_request_line(good, reinterpret_cast<uintptr_t>(good + 4), 2, good + 7));
    // "G\0ET /a HTTP/1.1": the method string stops at the NUL, the target is further away.
    char nul_method[] = "G\0ET\0/a\0HTTP/1.1";
    assert_non_null(check_request_line(nul_method, reinterpret_cast<uintptr_t>(nul_method + 5), 2, nul_method + 8));
    // "GET  /a HTTP/1.1": libmicrohttpd skips the second space.
    char two_spaces[] = "GET\0 /a\0HTTP/1.1";
    assert_non_null(check_request_line(two_spaces, reinterpret_cast<uintptr_t>(two_spaces + 5), 2, two_spaces + 8));
    // "GET /a\0b HTTP/1.1": the copied target stops at the NUL.
    char nul_target[] = "GET\0/a\0b\0HTTP/1.1";
    assert_non_null(check_request_line(nul_target, reinterpret_cast<uintptr_t>(nul_target + 4), 2, nul_target + 9));
}

void test_microhttpd__framing_agreement(void **) // rule: REQ-BODY-5
{
    core::HeadCheck chunked;
    chunked.body = core::BodyKind::chunked;
    core::HeadCheck length;
    length.body = core::BodyKind::length;
    assert_null(framing_mismatch(chunked, MhdFraming{1, true}));
    assert_non_null(framing_mismatch(chunked, MhdFraming{2, false})); // "identity" then "chunked"
    assert_non_null(framing_mismatch(chunked, MhdFraming{1, false})); // "gzip, chunked"
    assert_null(framing_mismatch(length, MhdFraming{0, false}));
    assert_non_null(framing_mismatch(length, MhdFraming{1, false})); // "identity" with a length
}

// ---- over a socket ------------------------------------------------------------------------

const cwsgi_server_api *g_api;
int g_handled;

int32_t app_init(const cwsgi_server_api *api, void **state, char *, size_t)
{
    g_api = api;
    *state = nullptr;
    return CWSGI_OK;
}

// Reads the body, answers 200 with its length.
int32_t app_handle(void *, cwsgi_request *req)
{
    __atomic_add_fetch(&g_handled, 1, __ATOMIC_SEQ_CST);
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
                               "mhd-test",
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

/// A microhttpd adapter serving the test app on a free loopback port, in this process.
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
    cfg.graceful_timeout_ms = 2000;
    cfg.log_level = CWSGI_LOG_ERROR;
    s->ctx = std::make_unique<core::Context>(cfg, "microhttpd", adapters::microhttpd_ops().capabilities);
    core::Context::set_current(s->ctx.get());
    std::string error;
    s->app = core::App::from_entry(app_entry, s->ctx->api(), error);
    if (!s->app || s->app->init(error) != CWSGI_OK) return -1;
    s->ctx->set_app(s->app.get());
    if (!core::open_listeners({"127.0.0.1:0"}, s->listeners, error)) return -1;
    s->port = core::listener_port(s->listeners[0]);
    Served *raw = s.get();
    s->thread = std::thread([raw] { adapters::microhttpd_ops().serve(*raw->ctx, raw->listeners); });
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

void test_microhttpd__serves_and_keeps_counts(void **state) // rule: RESP-FRAME-2
{
    auto *s = static_cast<Served *>(*state);
    std::string r = raw_exchange(s->port, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    assert_true(starts(r, "HTTP/1.1 200 OK\r\n"));
    assert_true(r.size() >= 1 && r.substr(r.size() - 1) == "5");
}

void test_microhttpd__hidden_malformations_get_400(void **state) // rule: REQ-HDR-1
{
    auto *s = static_cast<Served *>(*state);
    int before = __atomic_load_n(&g_handled, __ATOMIC_SEQ_CST);
#define RAW(literal) std::string(literal, sizeof(literal) - 1)
    const std::string cases[] = {
        // NUL in the method (REQ-LINE-1), and in the target.
        RAW("G\0ET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        RAW("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"),
        // obs-fold: libmicrohttpd glues the continuation onto the field name (REQ-HDR-2).
        RAW("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n B\r\n\r\n"),
        // A NUL in a value, and a field line ended by a bare LF (REQ-HDR-2).
        RAW("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\0002\r\n\r\n"),
        RAW("GET / HTTP/1.1\r\nHost: a\nX-A: 1\r\n\r\n"),
        // A field line with an empty name, which libmicrohttpd takes for the end of the head
        // and would read the rest as the next request (REQ-HDR-1).
        RAW("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n: b\r\nContent-Length: 5\r\n\r\nhello"),
        // Whitespace before the colon (REQ-HDR-1).
        RAW("GET / HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n"),
    };
#undef RAW
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        std::string r = raw_exchange(s->port, cases[i]);
        if (!starts(r, "HTTP/1.1 400 ")) {
            print_error("case %zu answered: %s\n", i, r.substr(0, 60).c_str());
            fail();
        }
    }
    assert_int_equal(__atomic_load_n(&g_handled, __ATOMIC_SEQ_CST), before);
}

void test_microhttpd__unframable_body_is_refused(void **state) // rule: REQ-BODY-5
{
    // libmicrohttpd would read these bodies until the connection closes (it never answers):
    // the adapter answers 501 before the body instead.
    auto *s = static_cast<Served *>(*state);
    std::string r =
        raw_exchange(s->port, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: "
                              "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    assert_true(starts(r, "HTTP/1.1 501 "));
}

void test_microhttpd__no_100_without_a_read(void **state) // rule: INPUT-EXPECT-1
{
    // "Expect: 100-continue" on a request without a body: libmicrohttpd would send a 100 by
    // itself; the adapter holds the request so that only the final answer goes out.
    auto *s = static_cast<Served *>(*state);
    std::string r = raw_exchange(s->port, "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n");
    assert_true(starts(r, "HTTP/1.1 200 OK\r\n"));
}

} // namespace

int main()
{
    const struct CMUnitTest unit[] = {
        cmocka_unit_test(test_microhttpd__http_version),
        cmocka_unit_test(test_microhttpd__request_line_layout),
        cmocka_unit_test(test_microhttpd__framing_agreement),
    };
    const struct CMUnitTest wire[] = {
        cmocka_unit_test(test_microhttpd__serves_and_keeps_counts),
        cmocka_unit_test(test_microhttpd__hidden_malformations_get_400),
        cmocka_unit_test(test_microhttpd__unframable_body_is_refused),
        cmocka_unit_test(test_microhttpd__no_100_without_a_read),
    };
    int failed = cmocka_run_group_tests_name("unit", unit, nullptr, nullptr);
    failed += cmocka_run_group_tests_name("wire", wire, setup, teardown);
    return failed;
}
