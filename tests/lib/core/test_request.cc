// test_request.cc: the per-request state machine (lib/core/request.cc), driven through the
// in-process test host with an app linked into this binary. Each scenario is a path the app
// dispatches on; the app records what the API returned so tests can check every misuse path.
#include "cmocka.hh"

#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cwsgi.h"
#include "cwsgi/testhost.h"

namespace {

const cwsgi_server_api *g_api;
std::vector<int64_t> g_rc;           // return codes the scenario recorded, in order
std::vector<int32_t> g_end_outcomes; // every on_request_end outcome
int g_end_calls = 0;
cwsgi_request *g_stale; // a handle kept past its request (misuse test)
std::string g_read;     // bytes the read scenarios got

cwsgi_header hdr(const char *n, const char *v) { return {n, std::strlen(n), v, std::strlen(v)}; }

int32_t start_text(cwsgi_request *req, uint32_t status = 200)
{
    cwsgi_header h = hdr("Content-Type", "text/plain");
    return g_api->start_response(req, status, nullptr, &h, 1, 0);
}

std::string path_of(cwsgi_request *req)
{
    cwsgi_str v{};
    g_api->environ_get(req, "PATH_INFO", &v);
    return std::string(v.ptr, v.len);
}

int32_t app_handle(void *, cwsgi_request *req)
{
    std::string p = path_of(req);
    auto rec = [](int64_t rc) { g_rc.push_back(rc); };
    if (p == "/hello") {
        start_text(req);
        return g_api->write(req, "hi\n", 3);
    }
    if (p == "/write-before-start") { // rule: RESP-STATE-2
        rec(g_api->write(req, "x", 1));
        rec(g_api->send_file(req, 0, 0, 1));
        start_text(req);
        return CWSGI_OK;
    }
    if (p == "/double-start") { // rule: RESP-START-4
        rec(start_text(req));
        rec(start_text(req, 201));
        cwsgi_header h = hdr("X-Replaced", "yes");
        rec(g_api->start_response(req, 202, "Replaced", &h, 1, CWSGI_RESPONSE_REPLACE));
        return g_api->write(req, "r", 1);
    }
    if (p == "/start-after-commit") { // rule: RESP-START-4
        start_text(req);
        g_api->write(req, "a", 1);
        rec(g_api->start_response(req, 500, nullptr, nullptr, 0, CWSGI_RESPONSE_REPLACE));
        return CWSGI_OK;
    }
    if (p == "/bad-status") { // rule: RESP-START-1
        rec(g_api->start_response(req, 99, nullptr, nullptr, 0, 0));
        rec(g_api->start_response(req, 100, nullptr, nullptr, 0, 0));
        rec(g_api->start_response(req, 600, nullptr, nullptr, 0, 0));
        rec(g_api->start_response(req, 200, "Bad\r\nReason", nullptr, 0, 0));
        rec(g_api->start_response(req, 200, nullptr, nullptr, 0, 0x80));
        return start_text(req);
    }
    if (p == "/bad-headers") { // rule: RESP-HDR-1, RESP-HDR-2, RESP-HDR-3
        cwsgi_header bad_name = hdr("Bad Name", "v");
        cwsgi_header crlf = hdr("X-Inject", "a\r\nSet-Cookie: evil=1");
        cwsgi_header nul = {"X-Nul", 5, "a\0b", 3};
        cwsgi_header conn = hdr("Connection", "keep-alive");
        cwsgi_header te = hdr("Transfer-Encoding", "chunked");
        cwsgi_header upgrade = hdr("Upgrade", "websocket");
        for (auto *h : {&bad_name, &crlf, &nul, &conn, &te, &upgrade}) {
            rec(g_api->start_response(req, 200, nullptr, h, 1, 0));
        }
        rec(g_api->start_response(req, 200, nullptr, nullptr, 2, 0)); // NULL array, n > 0
        return start_text(req);
    }
    if (p == "/cl-overrun") { // rule: RESP-LEN-2
        cwsgi_header h = hdr("Content-Length", "4");
        g_api->start_response(req, 200, nullptr, &h, 1, 0);
        rec(g_api->write(req, "abc", 3));
        rec(g_api->write(req, "de", 2)); // passes 4: refused, nothing of it sent
        rec(g_api->write(req, "d", 1));
        return CWSGI_OK;
    }
    if (p == "/cl-underrun") { // rule: RESP-LEN-3
        cwsgi_header h = hdr("Content-Length", "10");
        g_api->start_response(req, 200, nullptr, &h, 1, 0);
        rec(g_api->write(req, "abc", 3));
        rec(g_api->finish(req));
        return CWSGI_OK;
    }
    if (p == "/cl-bad") { // rule: RESP-LEN-1
        cwsgi_header h = hdr("Content-Length", "12x");
        rec(g_api->start_response(req, 200, nullptr, &h, 1, 0));
        cwsgi_header two[2] = {hdr("Content-Length", "1"), hdr("Content-Length", "2")};
        rec(g_api->start_response(req, 200, nullptr, two, 2, 0));
        return start_text(req);
    }
    if (p == "/no-content") { // rule: RESP-NOBODY-1, RESP-NOBODY-2
        cwsgi_header cl = hdr("Content-Length", "0");
        rec(g_api->start_response(req, 204, nullptr, &cl, 1, 0));
        g_api->start_response(req, 204, nullptr, nullptr, 0, 0);
        rec(g_api->write(req, "x", 1));
        rec(g_api->write(req, "", 0));
        return CWSGI_OK;
    }
    if (p == "/not-modified") { // rule: RESP-NOBODY-2
        cwsgi_header cl = hdr("Content-Length", "1234");
        rec(g_api->start_response(req, 304, nullptr, &cl, 1, 0));
        return CWSGI_OK;
    }
    if (p == "/finish-twice") { // rule: RESP-STATE-3
        start_text(req);
        rec(g_api->write(req, "ok", 2));
        rec(g_api->finish(req));
        rec(g_api->finish(req));
        rec(g_api->write(req, "x", 1));
        rec(g_api->start_response(req, 200, nullptr, nullptr, 0, 0));
        // Reading the environ stays allowed after finish.
        cwsgi_str v{};
        rec(g_api->environ_get(req, "REQUEST_METHOD", &v));
        return CWSGI_OK;
    }
    if (p == "/finish-before-start") { // rule: RESP-END-2
        rec(g_api->finish(req));
        return start_text(req);
    }
    if (p == "/no-response") { // rule: RESP-END-2
        return CWSGI_OK;
    }
    if (p == "/implied-finish") { // rule: RESP-END-1, RESP-FRAME-2
        return start_text(req);
    }
    if (p == "/streamed") { // rule: RESP-FRAME-3
        start_text(req);
        g_api->write(req, "one,", 4);
        return g_api->write(req, "two", 3);
    }
    if (p == "/error-before-commit") { // rule: RESP-ERR-1
        start_text(req);
        return CWSGI_E_APP;
    }
    if (p == "/error-after-commit") { // rule: RESP-ERR-2
        start_text(req);
        g_api->write(req, "partial", 7);
        return CWSGI_E_APP;
    }
    if (p == "/informational") { // rule: RESP-INFO-1, RESP-INFO-2, RESP-INFO-3
        cwsgi_header link = hdr("Link", "</style.css>; rel=preload");
        rec(g_api->send_informational(req, 103, &link, 1));
        rec(g_api->send_informational(req, 101, nullptr, 0));
        rec(g_api->send_informational(req, 200, nullptr, 0));
        start_text(req);
        rec(g_api->send_informational(req, 103, nullptr, 0));
        return CWSGI_OK;
    }
    if (p == "/stale") { // rule: RESP-STATE-1
        g_stale = req;
        return start_text(req);
    }
    if (p == "/read") { // rule: INPUT-READ-1, INPUT-READ-2, INPUT-READ-3
        char buf[7];
        g_read.clear();
        int64_t n;
        rec(g_api->read(req, nullptr, 10));
        rec(g_api->read(req, buf, 0));
        while ((n = g_api->read(req, buf, sizeof buf)) > 0) g_read.append(buf, static_cast<size_t>(n));
        rec(n);
        rec(g_api->read(req, buf, sizeof buf)); // sticky end
        return start_text(req);
    }
    if (p == "/read-then-fail") { // rule: INPUT-LIMIT-2
        char buf[4096];
        int64_t n;
        while ((n = g_api->read(req, buf, sizeof buf)) > 0) {
        }
        rec(n);
        return n < 0 ? static_cast<int32_t>(n) : start_text(req);
    }
    if (p == "/read-error-then-answer") { // rule: INPUT-READ-4, INPUT-READ-5
        // The app reads until the body fails, then answers anyway: the response is its own,
        // but the body's framing is lost, so the connection cannot carry another request.
        char buf[16];
        int64_t n;
        while ((n = g_api->read(req, buf, sizeof buf)) > 0) {
        }
        rec(n);
        cwsgi_header h = hdr("Content-Length", "2");
        g_api->start_response(req, 200, nullptr, &h, 1, 0);
        return g_api->write(req, "ok", 2);
    }
    if (p == "/answer-without-reading") { // rule: INPUT-EXPECT-2
        start_text(req, 417);
        g_api->write(req, "no", 2);
        char buf[8];
        rec(g_api->read(req, buf, sizeof buf));
        return CWSGI_OK;
    }
    if (p == "/head") { // rule: RESP-NOBODY-1
        cwsgi_header h = hdr("Content-Length", "5");
        g_api->start_response(req, 200, nullptr, &h, 1, 0);
        rec(g_api->write(req, "hello", 5));
        return CWSGI_OK;
    }
    if (p == "/long-stream") { // rule: LIFE-DISC-1
        start_text(req);
        char chunk[100];
        std::memset(chunk, 'x', sizeof chunk);
        int32_t rc = CWSGI_OK;
        for (int i = 0; i < 100 && rc == CWSGI_OK; ++i) rc = g_api->write(req, chunk, sizeof chunk);
        rec(rc);
        rec(g_api->is_disconnected(req));
        rec(g_api->write(req, chunk, 1));
        return CWSGI_OK;
    }
    if (p == "/send-file") { // rule: RESP-FILE-2, RESP-FILE-3
        char path[] = "/tmp/cwsgi-test-XXXXXX";
        int fd = mkstemp(path);
        unlink(path);
        const char data[] = "0123456789abcdef";
        if (::write(fd, data, 16) != 16) return CWSGI_E_IO;
        start_text(req);
        rec(g_api->send_file(req, fd, 100, 1)); // past the end
        rec(g_api->send_file(req, -1, 0, 1));   // bad fd
        rec(g_api->send_file(req, fd, 4, 6));   // "456789"
        rec(g_api->send_file(req, fd, 14, -1)); // "ef"
        close(fd);
        return CWSGI_OK;
    }
    if (p == "/arena") { // rule: MEM-ARENA-1, MEM-USER-1
        void *a = g_api->alloc(req, 10);
        void *b = g_api->alloc(req, 100000);
        rec(a != nullptr && b != nullptr && a != b);
        rec(reinterpret_cast<uintptr_t>(a) % alignof(std::max_align_t) == 0);
        std::memset(b, 1, 100000);
        g_api->set_user_data(req, a);
        rec(g_api->get_user_data(req) == a);
        return start_text(req);
    }
    if (p == "/info") { // rule: ENV-INFO-1, LIFE-INFO-1, ABI-STRUCT-2
        cwsgi_request_info small{};
        small.struct_size = 8;
        rec(g_api->request_info(req, &small));
        cwsgi_request_info info{};
        info.struct_size = sizeof info;
        rec(g_api->request_info(req, &info));
        rec(info.http_major * 10 + info.http_minor);
        rec(info.content_length);
        rec(g_api->request_info(req, nullptr));
        cwsgi_server_info si{};
        si.struct_size = sizeof si;
        rec(g_api->server_info(&si));
        rec(si.worker_id);
        rec(std::string(si.adapter.ptr, si.adapter.len) == "testhost");
        rec(g_api->is_shutting_down());
        return start_text(req);
    }
    if (p == "/log") { // rule: LOG-ERR-1
        rec(g_api->log(req, CWSGI_LOG_ERROR, "line one\nfake line", 18));
        rec(g_api->log(nullptr, CWSGI_LOG_WARNING, "no request", 10));
        rec(g_api->log(req, 7, "bad level", 9));
        return start_text(req);
    }
    if (p == "/trailers-read") { // rule: EXT-TRAILERS-1, EXT-TRAILERS-2, INPUT-READ-4
        auto *ext =
            static_cast<const cwsgi_ext_request_trailers *>(g_api->get_extension(CWSGI_EXT_REQUEST_TRAILERS, 1));
        char buf[64];
        int64_t n;
        while ((n = g_api->read(req, buf, sizeof buf)) > 0) {
        }
        rec(n);
        g_read.clear();
        cwsgi_str k{}, v{};
        for (size_t i = 0; ext->trailer_at(req, i, &k, &v) == CWSGI_OK; ++i) {
            g_read += std::string(k.ptr, k.len) + "=" + std::string(v.ptr, v.len) + ";";
        }
        // Trailers never show among the headers.
        rec(g_api->header_find(req, "x-checksum", 0, &v));
        return n < 0 ? static_cast<int32_t>(n) : start_text(req);
    }
    if (p == "/trailers") { // rule: EXT-TRAILERS-1
        auto *ext =
            static_cast<const cwsgi_ext_request_trailers *>(g_api->get_extension(CWSGI_EXT_REQUEST_TRAILERS, 1));
        rec(ext != nullptr);
        if (ext == nullptr) return start_text(req); // EXT-1: absent means fall back
        rec(g_api->get_extension(CWSGI_EXT_REQUEST_TRAILERS, 2) == nullptr);
        rec(g_api->get_extension("vendor.unknown", 1) == nullptr);
        cwsgi_str n{}, v{};
        rec(ext->trailer_at(req, 0, &n, &v)); // before the end of the body
        char buf[64];
        while (g_api->read(req, buf, sizeof buf) > 0) {
        }
        rec(ext->trailer_at(req, 0, &n, &v)); // none in the test host
        return start_text(req);
    }
    start_text(req, 404);
    return CWSGI_OK;
}

void app_end(void *, cwsgi_request *req, int32_t outcome)
{
    ++g_end_calls;
    g_end_outcomes.push_back(outcome);
    // rule: LIFE-END-1: request data is still readable here.
    cwsgi_str v{};
    assert_int_equal(g_api->environ_get(req, "REQUEST_METHOD", &v), CWSGI_OK);
}

int32_t app_init(const cwsgi_server_api *api, void **, char *, size_t)
{
    g_api = api;
    return CWSGI_OK;
}

const cwsgi_app_desc kDesc = {
    sizeof(cwsgi_app_desc),
    CWSGI_ABI_MAJOR,
    0,
    "state-machine-test",
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
    app_end,
    0,
    0,
};

int32_t entry(const cwsgi_server_api *, const cwsgi_app_desc **out)
{
    *out = &kDesc;
    return CWSGI_OK;
}

cwsgi_testhost *g_host;

struct Resp {
    cwsgi_test_response *r = nullptr;
    ~Resp() { cwsgi_test_response_free(r); }
    const char *header(const char *n) const { return cwsgi_test_response_header(r, n); }
    std::string body() const { return std::string(r->body, r->body_len); }
};

Resp run(const char *target, const char *method = "GET", const char *body = nullptr, uint32_t chunked = 0,
         const char *protocol = nullptr, std::vector<cwsgi_header> headers = {}, int64_t disconnect_after = 0)
{
    g_rc.clear();
    cwsgi_test_request q{};
    q.struct_size = sizeof q;
    q.target = target;
    q.method = method;
    q.protocol = protocol;
    q.body = body;
    q.body_len = body ? std::strlen(body) : 0;
    q.chunked = chunked;
    q.read_piece = 5;
    q.headers = headers.data();
    q.n_headers = headers.size();
    q.disconnect_after = disconnect_after;
    Resp r;
    assert_int_equal(cwsgi_testhost_request(g_host, &q, &r.r), CWSGI_OK);
    return r;
}

int setup(void **)
{
    cwsgi_testhost_options o{};
    o.struct_size = sizeof o;
    o.log_level = CWSGI_LOG_CRITICAL; // misuse warnings are expected here
    o.limit_request_body = 64;
    char err[256];
    g_host = cwsgi_testhost_open_entry(entry, &o, err, sizeof err);
    if (g_host == nullptr) std::fprintf(stderr, "open: %s\n", err);
    return g_host ? 0 : -1;
}

int teardown(void **)
{
    cwsgi_testhost_close(g_host);
    return 0;
}

void test_request__hello(void **)
{
    Resp r = run("/hello");
    assert_int_equal(r.r->status, 200);
    assert_string_equal(r.body().c_str(), "hi\n");
    assert_string_equal(r.header("Transfer-Encoding"), "chunked");
    assert_int_equal(r.r->outcome, CWSGI_OK);
    assert_true(r.r->keep_alive);
}

void test_request__write_before_start(void **)
{
    Resp r = run("/write-before-start");
    assert_int_equal(g_rc[0], CWSGI_E_STATE);
    assert_int_equal(g_rc[1], CWSGI_E_STATE);
    assert_int_equal(r.r->status, 200);
}

void test_request__double_start_and_replace(void **)
{
    Resp r = run("/double-start");
    assert_int_equal(g_rc[0], CWSGI_OK);
    assert_int_equal(g_rc[1], CWSGI_E_STATE);
    assert_int_equal(g_rc[2], CWSGI_OK);
    assert_int_equal(r.r->status, 202);
    assert_string_equal(r.r->reason, "Replaced");
    assert_string_equal(r.header("X-Replaced"), "yes");
    assert_null(r.header("Content-Type")); // the first response is gone entirely
}

void test_request__start_after_commit(void **)
{
    Resp r = run("/start-after-commit");
    assert_int_equal(g_rc[0], CWSGI_E_COMMITTED);
    assert_int_equal(r.r->status, 200);
}

void test_request__bad_status(void **)
{
    Resp r = run("/bad-status");
    assert_int_equal(g_rc[0], CWSGI_E_STATUS);
    assert_int_equal(g_rc[1], CWSGI_E_STATUS);
    assert_int_equal(g_rc[2], CWSGI_E_STATUS);
    assert_int_equal(g_rc[3], CWSGI_E_HEADER);
    assert_int_equal(g_rc[4], CWSGI_E_INVAL);
    assert_int_equal(r.r->status, 200);
}

void test_request__bad_headers(void **)
{
    Resp r = run("/bad-headers");
    const int64_t want[] = {CWSGI_E_HEADER,    CWSGI_E_HEADER,    CWSGI_E_HEADER, CWSGI_E_FORBIDDEN,
                            CWSGI_E_FORBIDDEN, CWSGI_E_FORBIDDEN, CWSGI_E_INVAL};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; ++i) assert_int_equal(g_rc[i], want[i]);
    assert_null(r.header("X-Inject"));
}

void test_request__content_length_overrun(void **)
{
    Resp r = run("/cl-overrun");
    assert_int_equal(g_rc[0], CWSGI_OK);
    assert_int_equal(g_rc[1], CWSGI_E_LENGTH);
    assert_int_equal(g_rc[2], CWSGI_OK);
    assert_string_equal(r.body().c_str(), "abcd");
    assert_string_equal(r.header("Content-Length"), "4");
    assert_int_equal(r.r->outcome, CWSGI_OK);
}

void test_request__content_length_underrun(void **)
{
    Resp r = run("/cl-underrun");
    assert_int_equal(g_rc[1], CWSGI_E_LENGTH);
    assert_true(r.r->aborted);
    assert_false(r.r->keep_alive);
    assert_int_equal(r.r->outcome, CWSGI_E_ABORTED);
}

void test_request__content_length_invalid(void **)
{
    run("/cl-bad");
    assert_int_equal(g_rc[0], CWSGI_E_HEADER);
    assert_int_equal(g_rc[1], CWSGI_E_HEADER);
}

void test_request__no_content(void **)
{
    Resp r = run("/no-content");
    assert_int_equal(g_rc[0], CWSGI_E_FORBIDDEN);
    assert_int_equal(g_rc[1], CWSGI_E_LENGTH);
    assert_int_equal(g_rc[2], CWSGI_OK);
    assert_int_equal(r.r->status, 204);
    assert_null(r.header("Content-Length"));
    assert_null(r.header("Transfer-Encoding"));
    assert_int_equal(r.r->body_len, 0);
}

void test_request__not_modified_keeps_length(void **)
{
    Resp r = run("/not-modified");
    assert_int_equal(r.r->status, 304);
    assert_string_equal(r.header("Content-Length"), "1234");
    assert_int_equal(r.r->body_len, 0);
    assert_false(r.r->aborted);
}

void test_request__finish_twice(void **)
{
    Resp r = run("/finish-twice");
    assert_int_equal(g_rc[1], CWSGI_OK);
    assert_int_equal(g_rc[2], CWSGI_E_STATE);
    assert_int_equal(g_rc[3], CWSGI_E_STATE);
    assert_int_equal(g_rc[4], CWSGI_E_STATE);
    assert_int_equal(g_rc[5], CWSGI_OK);
    assert_string_equal(r.body().c_str(), "ok");
}

void test_request__finish_before_start(void **)
{
    run("/finish-before-start");
    assert_int_equal(g_rc[0], CWSGI_E_STATE);
}

void test_request__no_response_is_500(void **)
{
    Resp r = run("/no-response");
    assert_int_equal(r.r->status, 500);
    assert_int_equal(r.r->outcome, CWSGI_E_APP);
}

void test_request__implied_finish_has_zero_length(void **)
{
    Resp r = run("/implied-finish");
    assert_int_equal(r.r->status, 200);
    assert_string_equal(r.header("Content-Length"), "0");
    assert_int_equal(r.r->framing, 1);
}

void test_request__streamed_framing(void **)
{
    Resp r = run("/streamed");
    assert_int_equal(r.r->framing, 2);
    assert_string_equal(r.body().c_str(), "one,two");
    Resp r10 = run("/streamed", "GET", nullptr, 0, "HTTP/1.0");
    assert_int_equal(r10.r->framing, 3);
    assert_false(r10.r->keep_alive);
    assert_string_equal(r10.header("Connection"), "close");
    Resp r2 = run("/streamed", "GET", nullptr, 0, "HTTP/2");
    assert_int_equal(r2.r->framing, 4);
}

void test_request__error_before_commit(void **)
{
    Resp r = run("/error-before-commit");
    assert_int_equal(r.r->status, 500);
    assert_string_equal(r.body().c_str(), "500 Internal Server Error\n");
    assert_int_equal(r.r->outcome, CWSGI_E_APP);
    assert_int_equal(r.r->handle_result, CWSGI_E_APP);
}

void test_request__error_after_commit(void **)
{
    Resp r = run("/error-after-commit");
    assert_int_equal(r.r->status, 200);
    assert_true(r.r->aborted);
    assert_string_equal(r.body().c_str(), "partial");
    assert_int_equal(r.r->outcome, CWSGI_E_ABORTED);
}

void test_request__informational(void **)
{
    Resp r = run("/informational");
    assert_int_equal(g_rc[0], CWSGI_OK);
    assert_int_equal(g_rc[1], CWSGI_E_STATUS);
    assert_int_equal(g_rc[2], CWSGI_E_STATUS);
    assert_int_equal(g_rc[3], CWSGI_E_STATE);
    assert_int_equal(r.r->informational, 1);
    Resp r10 = run("/informational", "GET", nullptr, 0, "HTTP/1.0");
    assert_int_equal(g_rc[0], CWSGI_DROPPED);
    assert_int_equal(r10.r->informational, 0);
}

void test_request__stale_handle(void **)
{
    run("/stale");
    cwsgi_str v{};
    assert_int_equal(g_api->environ_get(g_stale, "PATH_INFO", &v), CWSGI_E_INVAL);
    assert_int_equal(g_api->write(g_stale, "x", 1), CWSGI_E_INVAL);
    assert_int_equal(g_api->start_response(nullptr, 200, nullptr, nullptr, 0, 0), CWSGI_E_INVAL);
}

void test_request__read_length(void **)
{
    Resp r = run("/read", "POST", "hello, body");
    assert_int_equal(g_rc[0], CWSGI_E_INVAL);
    assert_int_equal(g_rc[1], CWSGI_E_INVAL);
    assert_int_equal(g_rc[2], 0);
    assert_int_equal(g_rc[3], 0);
    assert_string_equal(g_read.c_str(), "hello, body");
    assert_int_equal(r.r->status, 200);
}

void test_request__read_stops_at_content_length(void **) // rule: INPUT-READ-3
{
    // The exchange holds more bytes than the declared length (a pipelined request behind the
    // body, say): read hands out exactly Content-Length bytes, then the end.
    Resp r = run("/read", "POST", "abcdefgh", 0, nullptr, {hdr("Content-Length", "3")});
    assert_string_equal(g_read.c_str(), "abc");
    assert_int_equal(g_rc[2], 0);
    assert_int_equal(g_rc[3], 0);
    assert_int_equal(r.r->status, 200);
}

Resp run_read_error(int32_t read_error)
{
    g_rc.clear();
    cwsgi_test_request q{};
    q.struct_size = sizeof q;
    q.method = "POST";
    q.target = "/read-error-then-answer";
    q.body = "abc";
    q.body_len = 3;
    q.chunked = 1;
    q.read_error = read_error;
    Resp r;
    assert_int_equal(cwsgi_testhost_request(g_host, &q, &r.r), CWSGI_OK);
    return r;
}

void test_request__read_error_closes_connection(void **) // rule: INPUT-READ-5, RESP-FRAME-6
{
    for (int32_t err : {CWSGI_E_BODY, CWSGI_E_TIMEOUT}) {
        Resp r = run_read_error(err);
        assert_int_equal(g_rc[0], err);
        assert_int_equal(r.r->status, 200);
        assert_string_equal(r.body().c_str(), "ok");
        assert_non_null(r.header("Connection"));
        assert_string_equal(r.header("Connection"), "close");
        assert_false(r.r->keep_alive);
    }
    // The same answer after a body read to its end keeps the connection.
    Resp ok = run_read_error(0);
    assert_int_equal(g_rc[0], 0);
    assert_null(ok.header("Connection"));
    assert_true(ok.r->keep_alive);
}

void test_request__read_chunked(void **)
{
    run("/read", "POST", "chunked body", 1);
    assert_string_equal(g_read.c_str(), "chunked body");
    assert_int_equal(g_rc[2], 0);
}

void test_request__read_no_body(void **)
{
    run("/read");
    assert_string_equal(g_read.c_str(), "");
    assert_int_equal(g_rc[2], 0);
}

void test_request__body_limit_unknown_length(void **) // rule: INPUT-LIMIT-2
{
    std::string big(100, 'z');
    Resp r = run("/read-then-fail", "POST", big.c_str(), 1);
    assert_int_equal(g_rc[0], CWSGI_E_BODY);
    assert_int_equal(r.r->status, 413);
    assert_false(r.r->keep_alive);
}

void test_request__body_limit_known_length(void **) // rule: LIMIT-4
{
    std::string big(100, 'z');
    Resp r = run("/read", "POST", big.c_str());
    assert_int_equal(r.r->status, 413);
    assert_false(r.r->reached_app);
}

void test_request__expect_continue_lazy(void **) // rule: INPUT-EXPECT-1
{
    Resp r = run("/read", "POST", "data", 0, nullptr, {hdr("Expect", "100-continue")});
    assert_true(r.r->continue_sent);
    assert_string_equal(g_read.c_str(), "data");
    Resp q = run("/hello", "POST", "data", 0, nullptr, {hdr("Expect", "100-continue")});
    assert_false(q.r->continue_sent);
    assert_false(q.r->keep_alive); // the unread body is not on the wire: close
}

void test_request__expect_continue_after_commit(void **) // rule: INPUT-EXPECT-2
{
    Resp r = run("/answer-without-reading", "POST", "data", 0, nullptr, {hdr("Expect", "100-continue")});
    assert_int_equal(g_rc[0], CWSGI_E_STATE);
    assert_false(r.r->continue_sent);
    assert_int_equal(r.r->status, 417);
}

void test_request__head_discards_body(void **)
{
    Resp r = run("/head", "HEAD");
    assert_int_equal(g_rc[0], CWSGI_OK);
    assert_string_equal(r.header("Content-Length"), "5");
    assert_int_equal(r.r->body_len, 0);
    assert_false(r.r->aborted);
}

void test_request__head_without_length_has_no_content_length(void **) // rule: RESP-NOBODY-3
{
    // The app gave no length and no body: a GET gets Content-Length: 0 (RESP-FRAME-2), but
    // the server cannot know what GET would send for a HEAD, so it invents none.
    Resp get = run("/implied-finish");
    assert_string_equal(get.header("Content-Length"), "0");
    Resp r = run("/implied-finish", "HEAD");
    assert_int_equal(r.r->status, 200);
    assert_null(r.header("Content-Length"));
    assert_null(r.header("Transfer-Encoding"));
    assert_int_equal(r.r->framing, 0);
    assert_int_equal(r.r->body_len, 0);
    assert_true(r.r->keep_alive);
}

void test_request__disconnect(void **) // rule: LIFE-DISC-1, LIFE-END-1
{
    int before = g_end_calls;
    Resp r = run("/long-stream", "GET", nullptr, 0, nullptr, {}, 250);
    assert_int_equal(g_rc[0], CWSGI_E_DISCONNECTED);
    assert_int_equal(g_rc[1], 1);
    assert_int_equal(g_rc[2], CWSGI_E_DISCONNECTED);
    assert_int_equal(r.r->outcome, CWSGI_E_DISCONNECTED);
    assert_int_equal(g_end_calls, before + 1);
}

void test_request__send_file_fallback(void **)
{
    Resp r = run("/send-file");
    assert_int_equal(g_rc[0], CWSGI_E_INVAL);
    assert_int_equal(g_rc[1], CWSGI_E_INVAL);
    assert_int_equal(g_rc[2], CWSGI_OK);
    assert_int_equal(g_rc[3], CWSGI_OK);
    assert_string_equal(r.body().c_str(), "456789ef");
}

void test_request__arena_and_user_data(void **)
{
    run("/arena");
    assert_int_equal(g_rc[0], 1);
    assert_int_equal(g_rc[1], 1);
    assert_int_equal(g_rc[2], 1);
}

void test_request__info_structs(void **)
{
    run("/info", "POST", "12345");
    assert_int_equal(g_rc[0], CWSGI_OK);
    assert_int_equal(g_rc[1], CWSGI_OK);
    assert_int_equal(g_rc[2], 11);
    assert_int_equal(g_rc[3], 5);
    assert_int_equal(g_rc[4], CWSGI_E_INVAL);
    assert_int_equal(g_rc[5], CWSGI_OK);
    assert_int_equal(g_rc[6], 1);
    assert_int_equal(g_rc[7], 1);
    assert_int_equal(g_rc[8], 0);
}

void test_request__log(void **)
{
    run("/log");
    assert_int_equal(g_rc[0], CWSGI_OK);
    assert_int_equal(g_rc[1], CWSGI_OK);
    assert_int_equal(g_rc[2], CWSGI_E_INVAL);
}

void test_request__trailers_extension(void **)
{
    run("/trailers", "POST", "abc", 1);
    assert_int_equal(g_rc[0], 1);
    assert_int_equal(g_rc[1], 1);
    assert_int_equal(g_rc[2], 1);
    assert_int_equal(g_rc[3], CWSGI_E_STATE);
    assert_int_equal(g_rc[4], CWSGI_E_NOTFOUND);
}

Resp run_with_trailers(std::vector<cwsgi_header> trailers)
{
    g_rc.clear();
    cwsgi_test_request q{};
    q.struct_size = sizeof q;
    q.method = "POST";
    q.target = "/trailers-read";
    q.body = "abc";
    q.body_len = 3;
    q.chunked = 1;
    q.trailers = trailers.data();
    q.n_trailers = trailers.size();
    Resp r;
    assert_int_equal(cwsgi_testhost_request(g_host, &q, &r.r), CWSGI_OK);
    return r;
}

void test_request__trailers_checked(void **) // rule: EXT-TRAILERS-2, INPUT-READ-4
{
    Resp r = run_with_trailers({hdr("X-Checksum", "abc"), hdr("Server-Timing", "db;dur=5")});
    assert_int_equal(g_rc[0], 0);
    assert_string_equal(g_read.c_str(), "x-checksum=abc;server-timing=db;dur=5;");
    assert_int_equal(g_rc[1], CWSGI_E_NOTFOUND);
    assert_int_equal(r.r->status, 200);
    // A field RFC 9110 6.5.1 forbids in a trailer section makes the body malformed.
    for (const char *name : {"Content-Length", "host", "Transfer-Encoding", "Cookie", "Authorization"}) {
        Resp forbidden = run_with_trailers({hdr("X-Checksum", "abc"), hdr(name, "5")});
        assert_int_equal(g_rc[0], CWSGI_E_BODY);
        assert_int_equal(forbidden.r->status, 400);
    }
    Resp bad = run_with_trailers({hdr("Bad Name", "x")});
    assert_int_equal(g_rc[0], CWSGI_E_BODY);
    assert_int_equal(bad.r->status, 400);
    Resp bad_value = run_with_trailers({hdr("X-A", "a\rb")});
    assert_int_equal(g_rc[0], CWSGI_E_BODY);
    assert_int_equal(bad_value.r->status, 400);
}

void test_request__end_exactly_once(void **) // rule: LIFE-END-1
{
    const char *paths[] = {"/hello", "/error-before-commit", "/error-after-commit", "/no-response", "/cl-underrun"};
    for (const char *p : paths) {
        int before = g_end_calls;
        run(p);
        assert_int_equal(g_end_calls, before + 1);
    }
    // A request the server refuses never reaches the app, so it gets no on_request_end.
    int before = g_end_calls;
    run("/bad%zz");
    assert_int_equal(g_end_calls, before);
}

void test_request__functions_without_capabilities(void **) // rule: ABI-CAP-2
{
    // A server offering none of the optional capabilities still has every table function;
    // each behaves as its fallback says.
    cwsgi_testhost_close(g_host);
    cwsgi_testhost_options o{};
    o.struct_size = sizeof o;
    o.log_level = CWSGI_LOG_CRITICAL;
    o.capabilities = CWSGI_CAP_THREADS; // nonzero: otherwise the host's defaults apply
    char err[256];
    g_host = cwsgi_testhost_open_entry(entry, &o, err, sizeof err);
    assert_non_null(g_host);
    Resp r = run("/informational");
    assert_int_equal(g_rc[0], CWSGI_DROPPED);
    assert_int_equal(r.r->informational, 0);
    run("/trailers", "POST", "abc", 1);
    assert_int_equal(g_rc[0], 0); // no extension table without CWSGI_CAP_REQUEST_TRAILERS
}

} // namespace

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request__hello),
        cmocka_unit_test(test_request__write_before_start),
        cmocka_unit_test(test_request__double_start_and_replace),
        cmocka_unit_test(test_request__start_after_commit),
        cmocka_unit_test(test_request__bad_status),
        cmocka_unit_test(test_request__bad_headers),
        cmocka_unit_test(test_request__content_length_overrun),
        cmocka_unit_test(test_request__content_length_underrun),
        cmocka_unit_test(test_request__content_length_invalid),
        cmocka_unit_test(test_request__no_content),
        cmocka_unit_test(test_request__not_modified_keeps_length),
        cmocka_unit_test(test_request__finish_twice),
        cmocka_unit_test(test_request__finish_before_start),
        cmocka_unit_test(test_request__no_response_is_500),
        cmocka_unit_test(test_request__implied_finish_has_zero_length),
        cmocka_unit_test(test_request__streamed_framing),
        cmocka_unit_test(test_request__error_before_commit),
        cmocka_unit_test(test_request__error_after_commit),
        cmocka_unit_test(test_request__informational),
        cmocka_unit_test(test_request__stale_handle),
        cmocka_unit_test(test_request__read_length),
        cmocka_unit_test(test_request__read_stops_at_content_length),
        cmocka_unit_test(test_request__read_error_closes_connection),
        cmocka_unit_test(test_request__read_chunked),
        cmocka_unit_test(test_request__read_no_body),
        cmocka_unit_test(test_request__body_limit_unknown_length),
        cmocka_unit_test(test_request__body_limit_known_length),
        cmocka_unit_test(test_request__expect_continue_lazy),
        cmocka_unit_test(test_request__expect_continue_after_commit),
        cmocka_unit_test(test_request__head_discards_body),
        cmocka_unit_test(test_request__head_without_length_has_no_content_length),
        cmocka_unit_test(test_request__disconnect),
        cmocka_unit_test(test_request__send_file_fallback),
        cmocka_unit_test(test_request__arena_and_user_data),
        cmocka_unit_test(test_request__info_structs),
        cmocka_unit_test(test_request__log),
        cmocka_unit_test(test_request__trailers_extension),
        cmocka_unit_test(test_request__trailers_checked),
        cmocka_unit_test(test_request__end_exactly_once),
        cmocka_unit_test(test_request__functions_without_capabilities),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
