// test_router.cc: tests of the C++ layer, include/cwsgi.hpp. A test app (RouterTestApp) is
// linked into this binary with CWSGI_APP and driven through the in-process test host, so the
// layer is checked against the same core that every adapter runs: routing and path parameters,
// 404/405 with Allow, mounted groups and the SCRIPT_NAME/PATH_INFO split, exceptions before and
// after commit, HttpError, buffered bodies with Content-Length, streaming, query parsing, and
// the App lifecycle (init/worker_start failures, on_request_end). The text helpers (json_escape,
// url_decode, parse_query) and pattern validation are tested directly.
#include <cwsgi.hpp>
#include <cwsgi/testhost.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cmocka.hh"

namespace {

// What the app saw, for the tests to check after a request. The host runs one request at a
// time on the test's thread; atomics only keep the declaration honest for THREADS_SAFE.
std::atomic<int> g_request_ends{0};
std::atomic<int32_t> g_last_outcome{1};
std::atomic<uint32_t> g_worker_id{0};

std::string show(std::optional<std::string> v) { return v ? "[" + *v + "]" : "<none>"; }

class RouterTestApp : public cwsgi::App {
public:
    static constexpr uint32_t thread_safety() { return CWSGI_THREADS_SAFE; }
    static constexpr uint64_t required_caps() { return 0; }

    RouterTestApp()
    {
        using cwsgi::Request;
        using cwsgi::Response;
        auto where = [](const char *tag) {
            return [tag](Request &req, Response &res) {
                res.text(std::string(tag) + " script=" + std::string(req.script_name()) +
                         " path=" + std::string(req.path()));
            };
        };
        router()
            .get("/", [](Request &, Response &res) { res.text("root\n"); })
            .get("/hello", [](Request &, Response &res) { res.text("hello\n"); })
            .get("/items/<id>", [](Request &req, Response &res) { res.text("item " + std::string(*req.param("id"))); })
            .put("/items/<id>", [](Request &req, Response &res) { res.text("put " + std::string(*req.param("id"))); })
            .get("/items/<id>/parts/<part>",
                 [](Request &req, Response &res) {
                     res.text(std::string(*req.param("id")) + "/" + std::string(*req.param("part")) +
                              " n=" + std::to_string(req.params().size()));
                 })
            .get("/files/<path:rest>",
                 [](Request &req, Response &res) { res.text("file " + std::string(*req.param("rest"))); })
            .get("/where", where("root"))
            .get("/query",
                 [](Request &req, Response &res) {
                     res.text("a=" + show(req.query_param("a")) + " b=" + show(req.query_param("b")) +
                              " c=" + show(req.query_param("c")) + " d=" + show(req.query_param("d")) +
                              " x=" + show(req.query_param("x")) + " n=" + std::to_string(req.query_params().size()));
                 })
            .get("/headers",
                 [](Request &req, Response &res) {
                     size_t dups = 0;
                     size_t all = 0;
                     for (auto [name, value] : req.headers()) {
                         ++all;
                         dups += name == "x-dup" ? 1 : 0;
                     }
                     auto second = req.header("X-DUP", 1);
                     res.text("one=" + std::string(req.header("x-one").value_or("<none>")) +
                              " second=" + std::string(second.value_or("<none>")) + " dups=" + std::to_string(dups) +
                              " all=" + std::to_string(all) + " missing=" + (req.header("x-missing") ? "yes" : "no"));
                 })
            .get("/environ",
                 [](Request &req, Response &res) {
                     size_t n = 0;
                     bool saw_method = false;
                     for (auto [k, v] : req.environ_items()) {
                         ++n;
                         saw_method = saw_method || (k == "REQUEST_METHOD" && v == "GET");
                     }
                     res.text("method=" + std::string(req.environ("REQUEST_METHOD").value_or("?")) + " iter=" +
                              (saw_method && n > 5 ? "ok" : "bad") + " proto=" + std::string(req.protocol()) +
                              " absent=" + (req.environ("NO_SUCH_KEY") ? "yes" : "no"));
                 })
            // rule: ABI-ERR-4: these exceptions must stop at the CWSGI_APP trampolines.
            .get("/throw", [](Request &, Response &) -> void { throw std::runtime_error("boom"); })
            .get("/throw-after-commit",
                 [](Request &, Response &res) {
                     res.write("partial");
                     throw std::runtime_error("late boom");
                 })
            .get("/teapot", [](Request &, Response &) -> void { throw cwsgi::HttpError(418, "short and stout\n"); })
            .get("/too-many-fields", [](Request &, Response &) -> void { throw cwsgi::HttpError(431); })
            .get("/json-error",
                 [](Request &, Response &) -> void {
                     throw cwsgi::HttpError(422, "{\"error\":\"bad\"}", "application/json");
                 })
            .get("/replace",
                 [](Request &, Response &res) {
                     res.status(201).header("X-Gone", "1").text("never sent");
                     throw cwsgi::HttpError(409);
                 })
            .get("/http-error-after-commit",
                 [](Request &, Response &res) {
                     res.write("partial");
                     throw cwsgi::HttpError(400);
                 })
            .get("/stream",
                 [](Request &, Response &res) {
                     res.header("Content-Type", "text/plain");
                     res.write("a");
                     res.write("bc");
                     res.write("def");
                 })
            .get("/json", [](Request &, Response &res) { res.json("{\"s\":\"" + cwsgi::json_escape("q\"\n") + "\"}"); })
            .get("/html", [](Request &, Response &res) { res.html("<p>hi</p>"); })
            .get("/empty", [](Request &, Response &) {})
            .get("/no-content", [](Request &, Response &res) { res.status(204); })
            .get("/bad-header", [](Request &, Response &res) { res.header("X-Bad", "a\r\nb").text("x"); })
            .post("/body", [](Request &req, Response &res) { res.text(req.read_all(64)); })
            .get("/file",
                 [](Request &, Response &res) {
                     std::FILE *f = std::tmpfile();
                     if (f == nullptr || std::fputs("0123456789", f) < 0 || std::fflush(f) != 0) {
                         throw std::runtime_error("tmpfile");
                     }
                     res.header("Content-Type", "text/plain").header("Content-Length", "5");
                     try {
                         res.send_file(fileno(f), 2, 5);
                     } catch (...) {
                         std::fclose(f);
                         throw;
                     }
                     std::fclose(f);
                 })
            .get("/early-hints",
                 [](Request &, Response &res) {
                     int32_t rc = res.informational(103, {{"Link", "</a.css>; rel=preload"}});
                     res.text(rc == CWSGI_OK ? "hinted" : cwsgi_err_name(rc));
                 })
            .get("/length", [](Request &req, Response &res) {
                auto cl = req.content_length();
                res.text(cl ? std::to_string(*cl) : "unknown");
            });

        cwsgi::Group v2("/v2");
        v2.get("/where", where("v2"));
        cwsgi::Group api("/api");
        api.get("/", where("api-root"))
            .get("/where", where("api"))
            .get("/users/<name>",
                 [](Request &req, Response &res) {
                     res.text("user " + std::string(*req.param("name")) + " script=" + std::string(req.script_name()) +
                              " path=" + std::string(req.path()));
                 })
            .post("/users/<name>", [](Request &, Response &res) { res.status(201).text("created"); });
        api.mount(v2);
        router().mount(api);

        cwsgi::Router admin;
        admin.get("/where", where("admin"));
        router().mount("/admin", admin);
    }

    void init() override
    {
        if (std::getenv("TEST_ROUTER_INIT_FAIL") != nullptr) {
            throw std::runtime_error("init refused by the test");
        }
    }

    void worker_start(uint32_t worker_id) override
    {
        if (std::getenv("TEST_ROUTER_WORKER_FAIL") != nullptr) {
            throw std::runtime_error("worker_start refused by the test");
        }
        g_worker_id = worker_id;
    }

    void on_request_end(cwsgi::Request &req, int32_t outcome) override
    {
        (void)req;
        g_last_outcome = outcome;
        ++g_request_ends;
    }
};

} // namespace

CWSGI_APP(RouterTestApp, "router-test", "0.1");

namespace {

// ---- fixtures and helpers ------------------------------------------------------------------

cwsgi_testhost *open_host(const char *script_name)
{
    cwsgi_testhost_options opts{};
    opts.struct_size = sizeof opts;
    opts.script_name = script_name;
    opts.log_level = CWSGI_LOG_CRITICAL; // the exception tests log errors on purpose
    char err[512] = "";
    cwsgi_testhost *host = cwsgi_testhost_open_entry(cwsgi_app_entry, &opts, err, sizeof err);
    if (host == nullptr) {
        print_error("open failed: %s\n", err);
    }
    return host;
}

int setup(void **state)
{
    *state = open_host(nullptr);
    return *state != nullptr ? 0 : -1;
}

int teardown(void **state)
{
    cwsgi_testhost_close(static_cast<cwsgi_testhost *>(*state));
    return 0;
}

cwsgi_testhost *host_of(void **state) { return static_cast<cwsgi_testhost *>(*state); }

/// Runs one request; method/target/body as given. Fails the test when the host refuses.
cwsgi_test_response *request(void **state, const char *method, const char *target, const std::string &body = {},
                             const cwsgi_header *headers = nullptr, size_t n_headers = 0, bool chunked = false)
{
    cwsgi_test_request req{};
    req.struct_size = sizeof req;
    req.method = method;
    req.target = target;
    req.headers = headers;
    req.n_headers = n_headers;
    req.body = body.empty() ? nullptr : body.data();
    req.body_len = body.size();
    req.chunked = chunked ? 1 : 0;
    req.disconnect_after = -1;
    cwsgi_test_response *resp = nullptr;
    assert_int_equal(cwsgi_testhost_request(host_of(state), &req, &resp), CWSGI_OK);
    assert_non_null(resp);
    return resp;
}

cwsgi_test_response *get(void **state, const char *target) { return request(state, "GET", target); }

std::string body_of(const cwsgi_test_response *r) { return std::string(r->body, r->body_len); }

void expect(cwsgi_test_response *r, uint32_t status, const char *body)
{
    assert_int_equal(r->status, status);
    assert_string_equal(body_of(r).c_str(), body);
}

const char *header_or_empty(const cwsgi_test_response *r, const char *name)
{
    const char *v = cwsgi_test_response_header(r, name);
    return v != nullptr ? v : "";
}

// ---- text helpers (no host) ------------------------------------------------------------

void test_router__json_escape_quotes_controls_and_bad_utf8(void **)
{
    assert_string_equal(cwsgi::json_escape("plain").c_str(), "plain");
    assert_string_equal(cwsgi::json_escape("a\"b\\c").c_str(), "a\\\"b\\\\c");
    assert_string_equal(cwsgi::json_escape("\n\r\t\b\f").c_str(), "\\n\\r\\t\\b\\f");
    assert_string_equal(cwsgi::json_escape(std::string_view("\x01\x1f\0", 3)).c_str(), "\\u0001\\u001f\\u0000");
    // Well-formed UTF-8 passes; stray bytes are read as Latin-1.
    assert_string_equal(cwsgi::json_escape("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80").c_str(),
                        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    assert_string_equal(cwsgi::json_escape("caf\xe9").c_str(), "caf\\u00e9");
    assert_string_equal(cwsgi::json_escape("\xc0\xaf").c_str(), "\\u00c0\\u00af");            // overlong
    assert_string_equal(cwsgi::json_escape("\xed\xa0\x80").c_str(), "\\u00ed\\u00a0\\u0080"); // surrogate
    assert_string_equal(cwsgi::json_escape("\xe2\x82").c_str(), "\\u00e2\\u0082");            // truncated
}

void test_router__url_decode_and_parse_query(void **)
{
    assert_string_equal(cwsgi::url_decode("a%20b+c%2F%zz%4").c_str(), "a b c/%zz%4");
    assert_string_equal(cwsgi::url_decode("a+b", false).c_str(), "a+b");
    auto q = cwsgi::parse_query("a=1&&b=x+y&c&d=%3D%26&a=2&=v");
    assert_int_equal(q.size(), 6);
    assert_string_equal(q[0].first.c_str(), "a");
    assert_string_equal(q[0].second.c_str(), "1");
    assert_string_equal(q[1].second.c_str(), "x y");
    assert_string_equal(q[2].first.c_str(), "c");
    assert_string_equal(q[2].second.c_str(), "");
    assert_string_equal(q[3].second.c_str(), "=&");
    assert_string_equal(q[4].second.c_str(), "2");
    assert_string_equal(q[5].first.c_str(), "");
    assert_true(cwsgi::parse_query("").empty());
}

void test_router__bad_patterns_are_refused(void **)
{
    cwsgi::Handler h = [](cwsgi::Request &, cwsgi::Response &) {};
    const char *bad[] = {"", "items", "/a/<path:x>/b", "/a<b>", "/<>", "/<path:>", "/<a", "/x/<a:b>"};
    for (const char *p : bad) {
        cwsgi::Router r;
        bool threw = false;
        try {
            r.route("GET", p, h);
        } catch (const std::invalid_argument &) {
            threw = true;
        }
        if (!threw) {
            fail_msg("pattern '%s' was accepted", p);
        }
    }
    const char *bad_prefix[] = {"", "/", "api", "/api/", "/<x>"};
    for (const char *p : bad_prefix) {
        cwsgi::Router r;
        bool threw = false;
        try {
            r.mount(p, cwsgi::Router());
        } catch (const std::invalid_argument &) {
            threw = true;
        }
        if (!threw) {
            fail_msg("mount prefix '%s' was accepted", p);
        }
    }
    cwsgi::Router ok;
    ok.route("GET", "/a/<x>/<path:rest>", h).route("GET", "/", h).mount("/api", cwsgi::Router());
}

void test_router__descriptor_declares_the_class_statics(void **)
{
    const cwsgi_app_desc *desc = nullptr;
    assert_int_equal(cwsgi_app_entry(nullptr, &desc), CWSGI_OK);
    assert_non_null(desc);
    assert_int_equal(desc->struct_size, sizeof(cwsgi_app_desc));
    assert_int_equal(desc->abi_major, CWSGI_ABI_MAJOR);
    assert_string_equal(desc->name, "router-test");
    assert_string_equal(desc->version, "0.1");
    assert_int_equal(desc->thread_safety, CWSGI_THREADS_SAFE);
    assert_int_equal(desc->required_caps, 0);
    assert_non_null(desc->handle);
    assert_non_null(desc->on_request_end);
    // rule: ABI-VER-2: built against the 1.1 header, an app that uses nothing of 1.1 declares
    // minor 0 and sets no 1.1 field, so a 1.0 server still loads it (ABI-STRUCT-4).
    assert_int_equal(desc->abi_minor, 0);
    assert_int_equal(desc->flags, 0);
    // The cooperative promise is a 1.1 field: declaring it needs minor 1 (ABI-STRUCT-5).
    struct Coop : cwsgi::App {
        static constexpr bool cooperative() { return true; }
    };
    constexpr cwsgi_app_desc coop = cwsgi::detail::AppGlue<Coop>::descriptor("coop", "1");
    static_assert(coop.abi_minor == 1 && coop.flags == CWSGI_APP_COOPERATIVE);
    // A table from another ABI major is refused (ABI-VER-1).
    cwsgi_server_api other{};
    other.struct_size = sizeof other;
    other.abi_major = CWSGI_ABI_MAJOR + 1;
    assert_int_equal(cwsgi_app_entry(&other, &desc), CWSGI_E_ABI);
}

// ---- routing ---------------------------------------------------------------------------

void test_router__static_routes_answer_with_content_length(void **state)
{
    cwsgi_test_response *r = get(state, "/hello");
    expect(r, 200, "hello\n");
    assert_string_equal(header_or_empty(r, "Content-Length"), "6");
    assert_string_equal(header_or_empty(r, "Content-Type"), "text/plain; charset=utf-8");
    assert_int_equal(r->framing, 1); // rule: RESP-FRAME-1
    assert_int_equal(r->handle_result, CWSGI_OK);
    cwsgi_test_response_free(r);
    r = get(state, "/");
    expect(r, 200, "root\n");
    cwsgi_test_response_free(r);
}

void test_router__path_params_bind_one_segment(void **state)
{
    cwsgi_test_response *r = get(state, "/items/42");
    expect(r, 200, "item 42");
    cwsgi_test_response_free(r);
    r = get(state, "/items/a%20b"); // PATH_INFO is decoded before matching
    expect(r, 200, "item a b");
    cwsgi_test_response_free(r);
    r = get(state, "/items/7/parts/wheel");
    expect(r, 200, "7/wheel n=2");
    cwsgi_test_response_free(r);
    r = request(state, "PUT", "/items/9");
    expect(r, 200, "put 9");
    cwsgi_test_response_free(r);
    const char *misses[] = {"/items/", "/items", "/items/a/b", "/hello/", "/files/"};
    for (const char *t : misses) {
        r = get(state, t);
        if (r->status != 404) {
            fail_msg("%s answered %u, not 404", t, r->status);
        }
        cwsgi_test_response_free(r);
    }
}

void test_router__path_param_takes_the_rest(void **state)
{
    cwsgi_test_response *r = get(state, "/files/a/b/c.txt");
    expect(r, 200, "file a/b/c.txt");
    cwsgi_test_response_free(r);
}

void test_router__unknown_path_is_404(void **state)
{
    cwsgi_test_response *r = get(state, "/nope");
    expect(r, 404, "Not Found\n");
    assert_int_equal(r->reached_app, 1); // the router answered, not the server
    cwsgi_test_response_free(r);
}

void test_router__wrong_method_is_405_with_allow(void **state)
{
    cwsgi_test_response *r = request(state, "POST", "/hello");
    expect(r, 405, "Method Not Allowed\n");
    assert_string_equal(header_or_empty(r, "Allow"), "GET, HEAD");
    cwsgi_test_response_free(r);
    r = request(state, "DELETE", "/items/3");
    assert_int_equal(r->status, 405);
    assert_string_equal(header_or_empty(r, "Allow"), "GET, HEAD, PUT");
    cwsgi_test_response_free(r);
    r = request(state, "DELETE", "/api/users/bob");
    assert_int_equal(r->status, 405);
    assert_string_equal(header_or_empty(r, "Allow"), "GET, HEAD, POST");
    cwsgi_test_response_free(r);
}

void test_router__head_uses_the_get_route(void **state)
{
    cwsgi_test_response *r = request(state, "HEAD", "/hello");
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body_len, 0);
    assert_string_equal(header_or_empty(r, "Content-Length"), "6"); // rule: RESP-NOBODY-3
    cwsgi_test_response_free(r);
}

// ---- mounted groups: SCRIPT_NAME / PATH_INFO ----------------------------------------------

void test_router__group_moves_prefix_to_script_name(void **state)
{
    cwsgi_test_response *r = get(state, "/where");
    expect(r, 200, "root script= path=/where");
    cwsgi_test_response_free(r);
    r = get(state, "/api/where");
    expect(r, 200, "api script=/api path=/where"); // rule: ENV-PATH-2 (kept by the router)
    cwsgi_test_response_free(r);
    r = get(state, "/api/users/ann");
    expect(r, 200, "user ann script=/api path=/users/ann");
    cwsgi_test_response_free(r);
    r = request(state, "POST", "/api/users/ann");
    expect(r, 201, "created");
    cwsgi_test_response_free(r);
}

void test_router__group_prefix_alone_has_empty_path(void **state)
{
    cwsgi_test_response *r = get(state, "/api");
    expect(r, 200, "api-root script=/api path=");
    cwsgi_test_response_free(r);
    r = get(state, "/api/");
    expect(r, 200, "api-root script=/api path=/");
    cwsgi_test_response_free(r);
    r = get(state, "/apix"); // a prefix matches whole segments only
    assert_int_equal(r->status, 404);
    cwsgi_test_response_free(r);
    r = get(state, "/api/nothing"); // the group answers its own 404
    assert_int_equal(r->status, 404);
    cwsgi_test_response_free(r);
}

void test_router__nested_groups_and_mounted_routers(void **state)
{
    cwsgi_test_response *r = get(state, "/api/v2/where");
    expect(r, 200, "v2 script=/api/v2 path=/where");
    cwsgi_test_response_free(r);
    r = get(state, "/admin/where");
    expect(r, 200, "admin script=/admin path=/where");
    cwsgi_test_response_free(r);
}

void test_router__group_under_server_script_name(void **)
{
    cwsgi_testhost *host = open_host("/mnt");
    assert_non_null(host);
    void *state = host;
    cwsgi_test_response *r = get(&state, "/mnt/api/where");
    expect(r, 200, "api script=/mnt/api path=/where");
    cwsgi_test_response_free(r);
    r = get(&state, "/mnt/where");
    expect(r, 200, "root script=/mnt path=/where");
    cwsgi_test_response_free(r);
    cwsgi_testhost_close(host);
}

// ---- request accessors --------------------------------------------------------------------

void test_router__query_params_are_decoded(void **state)
{
    cwsgi_test_response *r = get(state, "/query?a=1&b=hello+world&c=%2F%3D&d&a=2");
    expect(r, 200, "a=[1] b=[hello world] c=[/=] d=[] x=<none> n=5");
    cwsgi_test_response_free(r);
    r = get(state, "/query");
    expect(r, 200, "a=<none> b=<none> c=<none> d=<none> x=<none> n=0");
    cwsgi_test_response_free(r);
}

void test_router__headers_lookup_and_iteration(void **state)
{
    const cwsgi_header hs[] = {
        {"X-One", 5, "1", 1},
        {"X-Dup", 5, "first", 5},
        {"X-Dup", 5, "second", 6},
    };
    cwsgi_test_response *r = request(state, "GET", "/headers", {}, hs, 3);
    // Host is added by the host: 4 headers in all.
    expect(r, 200, "one=1 second=second dups=2 all=4 missing=no");
    cwsgi_test_response_free(r);
}

void test_router__environ_lookup_and_iteration(void **state)
{
    cwsgi_test_response *r = get(state, "/environ");
    expect(r, 200, "method=GET iter=ok proto=HTTP/1.1 absent=no");
    cwsgi_test_response_free(r);
}

void test_router__read_all_returns_the_body(void **state)
{
    cwsgi_test_response *r = request(state, "POST", "/body", "0123456789");
    expect(r, 200, "0123456789");
    cwsgi_test_response_free(r);
    r = request(state, "POST", "/body", "chunked body", nullptr, 0, true);
    expect(r, 200, "chunked body");
    cwsgi_test_response_free(r);
}

void test_router__read_all_over_limit_is_413(void **state)
{
    std::string big(65, 'x');
    cwsgi_test_response *r = request(state, "POST", "/body", big); // Content-Length says so
    assert_int_equal(r->status, 413);
    cwsgi_test_response_free(r);
    r = request(state, "POST", "/body", big, nullptr, 0, true); // found while reading
    assert_int_equal(r->status, 413);
    cwsgi_test_response_free(r);
}

void test_router__content_length_is_known_or_not(void **state)
{
    cwsgi_test_response *r = request(state, "GET", "/length", "abc");
    expect(r, 200, "3");
    cwsgi_test_response_free(r);
    r = request(state, "GET", "/length", "abc", nullptr, 0, true);
    expect(r, 200, "unknown");
    cwsgi_test_response_free(r);
}

// ---- response ------------------------------------------------------------------------------

void test_router__json_and_html_set_content_type(void **state)
{
    cwsgi_test_response *r = get(state, "/json");
    expect(r, 200, "{\"s\":\"q\\\"\\n\"}");
    assert_string_equal(header_or_empty(r, "Content-Type"), "application/json");
    assert_string_equal(header_or_empty(r, "Content-Length"), "13");
    cwsgi_test_response_free(r);
    r = get(state, "/html");
    expect(r, 200, "<p>hi</p>");
    assert_string_equal(header_or_empty(r, "Content-Type"), "text/html; charset=utf-8");
    cwsgi_test_response_free(r);
}

void test_router__streaming_writes_are_not_length_framed(void **state)
{
    cwsgi_test_response *r = get(state, "/stream");
    expect(r, 200, "abcdef");
    assert_null(cwsgi_test_response_header(r, "Content-Length"));
    assert_int_equal(r->framing, 2); // rule: RESP-FRAME-3
    cwsgi_test_response_free(r);
}

void test_router__empty_and_no_content_responses(void **state)
{
    cwsgi_test_response *r = get(state, "/empty");
    expect(r, 200, "");
    assert_string_equal(header_or_empty(r, "Content-Length"), "0");
    cwsgi_test_response_free(r);
    r = get(state, "/no-content");
    expect(r, 204, "");
    assert_null(cwsgi_test_response_header(r, "Content-Length")); // rule: RESP-NOBODY-2
    cwsgi_test_response_free(r);
}

void test_router__send_file_sends_the_range(void **state)
{
    cwsgi_test_response *r = get(state, "/file");
    expect(r, 200, "23456"); // rule: RESP-FILE-1
    assert_string_equal(header_or_empty(r, "Content-Length"), "5");
    assert_int_equal(r->framing, 1);
    cwsgi_test_response_free(r);
}

void test_router__informational_goes_before_the_answer(void **state)
{
    cwsgi_test_response *r = get(state, "/early-hints");
    expect(r, 200, "hinted"); // rule: RESP-INFO-1
    assert_int_equal(r->informational, 1);
    cwsgi_test_response_free(r);
}

void test_router__positive_codes_are_success(void **state)
{
    // rule: ABI-ERR-3: an HTTP/1.0 client cannot take a 1xx, so send_informational returns the
    // positive CWSGI_DROPPED; the layer treats it as success and the handler goes on.
    cwsgi_test_request req{};
    req.struct_size = sizeof req;
    req.target = "/early-hints";
    req.protocol = "HTTP/1.0";
    cwsgi_test_response *r = nullptr;
    assert_int_equal(cwsgi_testhost_request(host_of(state), &req, &r), CWSGI_OK);
    expect(r, 200, "CWSGI_DROPPED");
    assert_int_equal(r->informational, 0);
    cwsgi_test_response_free(r);
}

// ---- exceptions at the edge ---------------------------------------------------------------

void test_router__exception_before_commit_is_500(void **state)
{
    int ends = g_request_ends;
    cwsgi_test_response *r = get(state, "/throw");
    assert_int_equal(r->status, 500);
    assert_int_equal(r->handle_result, CWSGI_E_APP);
    assert_int_equal(r->outcome, CWSGI_E_APP); // rule: RESP-ERR-1
    assert_int_equal(r->aborted, 0);
    assert_int_equal(g_request_ends, ends + 1); // rule: LIFE-END-1
    assert_int_equal(g_last_outcome, CWSGI_E_APP);
    cwsgi_test_response_free(r);
}

void test_router__exception_after_commit_aborts(void **state)
{
    cwsgi_test_response *r = get(state, "/throw-after-commit");
    assert_int_equal(r->status, 200);
    assert_int_equal(r->handle_result, CWSGI_E_APP);
    assert_int_equal(r->aborted, 1); // rule: RESP-ERR-2
    assert_int_equal(r->outcome, CWSGI_E_ABORTED);
    assert_int_equal(g_last_outcome, CWSGI_E_ABORTED);
    cwsgi_test_response_free(r);
}

void test_router__http_error_sets_status_and_body(void **state)
{
    cwsgi_test_response *r = get(state, "/teapot");
    expect(r, 418, "short and stout\n");
    assert_string_equal(header_or_empty(r, "Content-Type"), "text/plain; charset=utf-8");
    assert_string_equal(header_or_empty(r, "Content-Length"), "16");
    assert_int_equal(r->handle_result, CWSGI_OK);
    assert_int_equal(r->outcome, CWSGI_OK);
    cwsgi_test_response_free(r);
    r = get(state, "/json-error");
    expect(r, 422, "{\"error\":\"bad\"}");
    assert_string_equal(header_or_empty(r, "Content-Type"), "application/json");
    cwsgi_test_response_free(r);
}

void test_router__http_error_body_uses_the_shared_reason_phrase(void **state)
{
    // HttpError's default body and the status line come from the same table (cwsgi.h).
    cwsgi_test_response *r = get(state, "/too-many-fields");
    expect(r, 431, "Request Header Fields Too Large\n");
    assert_string_equal(r->reason, "Request Header Fields Too Large");
    cwsgi_test_response_free(r);
}

void test_router__http_error_replaces_an_uncommitted_response(void **state)
{
    cwsgi_test_response *r = get(state, "/replace");
    expect(r, 409, "Conflict\n"); // rule: RESP-START-4 (REPLACE before commit)
    assert_null(cwsgi_test_response_header(r, "X-Gone"));
    cwsgi_test_response_free(r);
}

void test_router__http_error_after_commit_aborts(void **state)
{
    cwsgi_test_response *r = get(state, "/http-error-after-commit");
    assert_int_equal(r->status, 200);
    assert_int_equal(r->handle_result, CWSGI_E_APP);
    assert_int_equal(r->aborted, 1);
    cwsgi_test_response_free(r);
}

void test_router__header_refused_by_server_is_500(void **state)
{
    cwsgi_test_response *r = get(state, "/bad-header");
    assert_int_equal(r->status, 500); // rule: RESP-HDR-2 (CR/LF in a value), then RESP-ERR-1
    assert_int_equal(r->handle_result, CWSGI_E_HEADER);
    assert_null(cwsgi_test_response_header(r, "X-Bad"));
    cwsgi_test_response_free(r);
}

void test_router__read_error_code_reaches_the_server(void **)
{
    cwsgi_testhost_options opts{};
    opts.struct_size = sizeof opts;
    opts.log_level = CWSGI_LOG_CRITICAL;
    opts.limit_request_body = 8;
    char err[512] = "";
    cwsgi_testhost *host = cwsgi_testhost_open_entry(cwsgi_app_entry, &opts, err, sizeof err);
    assert_non_null(host);
    void *state = host;
    // Chunked, so the server finds the excess while the app reads: read() fails with
    // CWSGI_E_BODY, cwsgi::Error carries it out, and the server answers 413.
    cwsgi_test_response *r = request(&state, "POST", "/body", "0123456789abcdef", nullptr, 0, true);
    assert_int_equal(r->status, 413); // rule: INPUT-LIMIT-2, RESP-ERR-1
    assert_int_equal(r->handle_result, CWSGI_E_BODY);
    cwsgi_test_response_free(r);
    cwsgi_testhost_close(host);
}

// ---- lifecycle -----------------------------------------------------------------------------

void test_router__on_request_end_runs_once_per_request(void **state)
{
    int before = g_request_ends;
    cwsgi_test_response *r = get(state, "/hello");
    assert_int_equal(g_request_ends, before + 1);
    assert_int_equal(g_last_outcome, CWSGI_OK);
    cwsgi_test_response_free(r);
    r = get(state, "/nope"); // a router 404 still reached the app
    assert_int_equal(g_request_ends, before + 2);
    cwsgi_test_response_free(r);
    assert_int_equal(g_worker_id, 1);
}

void test_router__init_exception_is_the_load_error(void **)
{
    setenv("TEST_ROUTER_INIT_FAIL", "1", 1);
    char err[512] = "";
    cwsgi_testhost *host = cwsgi_testhost_open_entry(cwsgi_app_entry, nullptr, err, sizeof err);
    unsetenv("TEST_ROUTER_INIT_FAIL");
    assert_null(host); // rule: LIFE-LOAD-2
    if (std::strstr(err, "init refused by the test") == nullptr) {
        fail_msg("open error does not carry the app's message: '%s'", err);
    }
}

void test_router__worker_start_exception_fails_the_open(void **)
{
    setenv("TEST_ROUTER_WORKER_FAIL", "1", 1);
    char err[512] = "";
    cwsgi_testhost *host = cwsgi_testhost_open_entry(cwsgi_app_entry, nullptr, err, sizeof err);
    unsetenv("TEST_ROUTER_WORKER_FAIL");
    assert_null(host); // rule: LIFE-WORKER-2
    if (std::strstr(err, "worker_start refused by the test") == nullptr) {
        fail_msg("open error does not carry the app's message: '%s'", err);
    }
}

} // namespace

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router__json_escape_quotes_controls_and_bad_utf8),
        cmocka_unit_test(test_router__url_decode_and_parse_query),
        cmocka_unit_test(test_router__bad_patterns_are_refused),
        cmocka_unit_test(test_router__descriptor_declares_the_class_statics),
        T(test_router__static_routes_answer_with_content_length),
        T(test_router__path_params_bind_one_segment),
        T(test_router__path_param_takes_the_rest),
        T(test_router__unknown_path_is_404),
        T(test_router__wrong_method_is_405_with_allow),
        T(test_router__head_uses_the_get_route),
        T(test_router__group_moves_prefix_to_script_name),
        T(test_router__group_prefix_alone_has_empty_path),
        T(test_router__nested_groups_and_mounted_routers),
        cmocka_unit_test(test_router__group_under_server_script_name),
        T(test_router__query_params_are_decoded),
        T(test_router__headers_lookup_and_iteration),
        T(test_router__environ_lookup_and_iteration),
        T(test_router__read_all_returns_the_body),
        T(test_router__read_all_over_limit_is_413),
        T(test_router__content_length_is_known_or_not),
        T(test_router__json_and_html_set_content_type),
        T(test_router__streaming_writes_are_not_length_framed),
        T(test_router__empty_and_no_content_responses),
        T(test_router__send_file_sends_the_range),
        T(test_router__informational_goes_before_the_answer),
        T(test_router__positive_codes_are_success),
        T(test_router__exception_before_commit_is_500),
        T(test_router__exception_after_commit_aborts),
        T(test_router__http_error_sets_status_and_body),
        T(test_router__http_error_body_uses_the_shared_reason_phrase),
        T(test_router__http_error_replaces_an_uncommitted_response),
        T(test_router__http_error_after_commit_aborts),
        T(test_router__header_refused_by_server_is_500),
        cmocka_unit_test(test_router__read_error_code_reaches_the_server),
        T(test_router__on_request_end_runs_once_per_request),
        cmocka_unit_test(test_router__init_exception_is_the_load_error),
        cmocka_unit_test(test_router__worker_start_exception_fails_the_open),
    };
#undef T
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
