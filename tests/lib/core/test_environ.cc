// test_environ.cc: how the core builds the environ and the header list from a request
// (ENV-* rules), through the in-process test host with an app that reports what it sees.
#include "cmocka.hh"

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "cwsgi.h"
#include "cwsgi/testhost.h"

namespace {

const cwsgi_server_api *g_api;
std::map<std::string, std::string> g_env; // last request's environ
std::vector<std::string> g_env_order;     // its keys in order
std::vector<std::pair<std::string, std::string>> g_headers;

int32_t handle(void *, cwsgi_request *req)
{
    g_env.clear();
    g_env_order.clear();
    g_headers.clear();
    cwsgi_str k{}, v{};
    for (size_t i = 0; g_api->environ_at(req, i, &k, &v) == CWSGI_OK; ++i) {
        assert_int_equal(k.ptr[k.len], '\0'); // rule: ABI-TYPE-2
        assert_int_equal(v.ptr[v.len], '\0');
        g_env[std::string(k.ptr, k.len)] = std::string(v.ptr, v.len);
        g_env_order.emplace_back(k.ptr, k.len);
        // environ_get answers from the request's facts without the list: same value, also
        // for joined duplicates (ENV-KEYS-1, ENV-HDR-4).
        cwsgi_str got{};
        assert_int_equal(g_api->environ_get(req, k.ptr, &got), CWSGI_OK);
        assert_int_equal(got.ptr[got.len], '\0');
        assert_string_equal(std::string(got.ptr, got.len).c_str(), std::string(v.ptr, v.len).c_str());
    }
    cwsgi_str none{};
    assert_int_equal(g_api->environ_get(req, "HTTP_NOT_SENT_AT_ALL", &none), CWSGI_E_NOTFOUND);
    assert_int_equal(g_api->environ_get(req, "NO_SUCH_KEY", &none), CWSGI_E_NOTFOUND);
    if (g_env.count("CONTENT_TYPE") == 0) {
        assert_int_equal(g_api->environ_get(req, "CONTENT_TYPE", &none), CWSGI_E_NOTFOUND);
    }
    for (size_t i = 0; g_api->header_at(req, i, &k, &v) == CWSGI_OK; ++i) {
        g_headers.emplace_back(std::string(k.ptr, k.len), std::string(v.ptr, v.len));
    }
    return g_api->start_response(req, 200, nullptr, nullptr, 0, 0);
}

int32_t init(const cwsgi_server_api *api, void **, char *, size_t)
{
    g_api = api;
    return CWSGI_OK;
}

const cwsgi_app_desc kDesc = {sizeof(cwsgi_app_desc),
                              CWSGI_ABI_MAJOR,
                              0,
                              "environ-test",
                              "1",
                              CWSGI_THREADS_SAFE,
                              0,
                              0,
                              nullptr,
                              init,
                              nullptr,
                              nullptr,
                              nullptr,
                              handle,
                              nullptr,
                              0,
                              0};
int32_t entry(const cwsgi_server_api *, const cwsgi_app_desc **out)
{
    *out = &kDesc;
    return CWSGI_OK;
}

cwsgi_testhost *g_host;

void reopen(const char *script_name)
{
    cwsgi_testhost_close(g_host);
    cwsgi_testhost_options o{};
    o.struct_size = sizeof o;
    o.script_name = script_name;
    char err[256];
    g_host = cwsgi_testhost_open_entry(entry, &o, err, sizeof err);
    assert_non_null(g_host);
}

cwsgi_header hdr(const char *n, const char *v) { return {n, std::strlen(n), v, std::strlen(v)}; }

uint32_t run(const char *method, const char *target, std::vector<cwsgi_header> headers = {},
             const char *protocol = nullptr, const char *body = nullptr)
{
    cwsgi_test_request q{};
    q.struct_size = sizeof q;
    q.method = method;
    q.target = target;
    q.protocol = protocol;
    q.headers = headers.data();
    q.n_headers = headers.size();
    q.body = body;
    q.body_len = body ? std::strlen(body) : 0;
    cwsgi_test_response *r = nullptr;
    assert_int_equal(cwsgi_testhost_request(g_host, &q, &r), CWSGI_OK);
    uint32_t status = r->status;
    cwsgi_test_response_free(r);
    return status;
}

const char *env(const char *k)
{
    auto it = g_env.find(k);
    return it == g_env.end() ? nullptr : it->second.c_str();
}

void test_environ__get_keys(void **) // rule: ENV-KEYS-1, ENV-KEYS-2, ENV-KEYS-4
{
    reopen(nullptr);
    assert_int_equal(run("GET", "/a/b?x=1&y=%20", {hdr("Host", "example.com:8080"), hdr("User-Agent", "t")}), 200);
    assert_string_equal(env("REQUEST_METHOD"), "GET");
    assert_string_equal(env("SCRIPT_NAME"), "");
    assert_string_equal(env("PATH_INFO"), "/a/b");
    assert_string_equal(env("QUERY_STRING"), "x=1&y=%20");
    assert_string_equal(env("SERVER_NAME"), "example.com");
    assert_string_equal(env("SERVER_PORT"), "8080");
    assert_string_equal(env("SERVER_PROTOCOL"), "HTTP/1.1");
    assert_string_equal(env("REQUEST_URI"), "/a/b?x=1&y=%20");
    assert_string_equal(env("REMOTE_ADDR"), "127.0.0.1");
    assert_string_equal(env("REMOTE_PORT"), "54321");
    assert_string_equal(env("cwsgi.url_scheme"), "http");
    assert_string_equal(env("cwsgi.raw_path"), "/a/b");
    const std::string abi = "1." + std::to_string(CWSGI_ABI_MINOR); // the ABI version the server implements
    assert_string_equal(env("cwsgi.version"), abi.c_str());
    assert_non_null(env("cwsgi.request_id"));
    assert_string_equal(env("HTTP_USER_AGENT"), "t");
    assert_null(env("CONTENT_TYPE")); // rule: ENV-KEYS-3
    assert_null(env("CONTENT_LENGTH"));
    // The PEP 3333 keys come first, in the spec's order.
    assert_string_equal(g_env_order[0].c_str(), "REQUEST_METHOD");
    assert_string_equal(g_env_order[1].c_str(), "SCRIPT_NAME");
    assert_string_equal(g_env_order[2].c_str(), "PATH_INFO");
}

void test_environ__post_content_keys(void **) // rule: ENV-KEYS-3
{
    reopen(nullptr);
    run("POST", "/p", {hdr("Content-Type", "application/json")}, nullptr, "{}");
    assert_string_equal(env("CONTENT_TYPE"), "application/json");
    assert_string_equal(env("CONTENT_LENGTH"), "2");
    assert_null(env("HTTP_CONTENT_TYPE"));
    assert_null(env("HTTP_CONTENT_LENGTH"));
}

void test_environ__head_and_options(void **)
{
    reopen(nullptr);
    run("HEAD", "/h");
    assert_string_equal(env("REQUEST_METHOD"), "HEAD");
    run("OPTIONS", "*");
    assert_string_equal(env("PATH_INFO"), "*");
    assert_string_equal(env("REQUEST_URI"), "*");
    assert_string_equal(env("QUERY_STRING"), "");
}

void test_environ__encoded_slash(void **) // rule: ENV-PATH-2, ENV-PATH-3
{
    reopen(nullptr);
    run("GET", "/files/a%2Fb%20c");
    assert_string_equal(env("PATH_INFO"), "/files/a/b c");
    assert_string_equal(env("cwsgi.raw_path"), "/files/a%2Fb%20c");
    assert_string_equal(env("REQUEST_URI"), "/files/a%2Fb%20c");
}

void test_environ__lowercase_percent_escapes(void **) // rule: ENV-PATH-2, ENV-PATH-3
{
    // RFC 3986 hex digits are case-insensitive: %2f and %2F are the same byte.
    reopen(nullptr);
    assert_int_equal(run("GET", "/a%2fb%7ec%2Ad%3a"), 200);
    assert_string_equal(env("PATH_INFO"), "/a/b~c*d:");
    assert_string_equal(env("cwsgi.raw_path"), "/a%2fb%7ec%2Ad%3a");
}

void test_environ__content_length_zero(void **) // rule: ENV-KEYS-3
{
    // A Content-Length field of 0 is a field the client sent: CONTENT_LENGTH shows it.
    reopen(nullptr);
    assert_int_equal(run("POST", "/p", {hdr("Content-Length", "0")}), 200);
    assert_non_null(env("CONTENT_LENGTH"));
    assert_string_equal(env("CONTENT_LENGTH"), "0");
    assert_null(env("HTTP_CONTENT_LENGTH"));
    assert_int_equal(run("GET", "/g", {hdr("Content-Length", "0")}), 200);
    assert_non_null(env("CONTENT_LENGTH"));
    assert_string_equal(env("CONTENT_LENGTH"), "0");
}

void test_environ__absolute_form(void **) // rule: ENV-KEYS-5
{
    reopen(nullptr);
    run("GET", "http://other.example:81/x?q", {hdr("Host", "ignored.example")});
    assert_string_equal(env("PATH_INFO"), "/x");
    assert_string_equal(env("QUERY_STRING"), "q");
    assert_string_equal(env("SERVER_NAME"), "other.example");
    assert_string_equal(env("SERVER_PORT"), "81");
    assert_string_equal(env("REQUEST_URI"), "http://other.example:81/x?q");
}

void test_environ__fragment_dropped(void **)
{
    reopen(nullptr);
    run("GET", "/page?a=1#frag");
    assert_string_equal(env("PATH_INFO"), "/page");
    assert_string_equal(env("QUERY_STRING"), "a=1");
}

void test_environ__server_name_fallbacks(void **) // rule: ENV-KEYS-5
{
    reopen(nullptr);
    run("GET", "/", {hdr("Host", "[::1]:9000")});
    assert_string_equal(env("SERVER_NAME"), "[::1]");
    assert_string_equal(env("SERVER_PORT"), "9000");
    run("GET", "/", {hdr("Host", "plain.example")});
    assert_string_equal(env("SERVER_PORT"), "80");
    run("GET", "/", {}, "HTTP/2");
    assert_string_equal(env("SERVER_PROTOCOL"), "HTTP/2");
    assert_string_equal(env("SERVER_NAME"), "localhost");
    assert_string_equal(env("HTTP_HOST"), "localhost"); // :authority shows as host
}

void test_environ__duplicate_headers(void **) // rule: ENV-HDR-1, ENV-HDR-3, ENV-HDR-4
{
    reopen(nullptr);
    run("GET", "/",
        {hdr("Accept", "a"), hdr("X-Multi", "1"), hdr("Cookie", "a=1"), hdr("x-multi", "2"), hdr("Cookie", "b=2")});
    assert_string_equal(env("HTTP_X_MULTI"), "1, 2");
    assert_string_equal(env("HTTP_COOKIE"), "a=1; b=2");
    // The ordered list keeps both, lowercased, in arrival order.
    std::vector<std::string> names;
    for (auto &h : g_headers) names.push_back(h.first);
    assert_string_equal(names[0].c_str(), "host");
    assert_string_equal(names[1].c_str(), "accept");
    assert_string_equal(names[2].c_str(), "x-multi");
    assert_string_equal(names[4].c_str(), "x-multi");
    assert_string_equal(g_headers[4].second.c_str(), "2");
}

void test_environ__h2_authority_is_host(void **) // rule: ENV-HDR-1, REQ-H2-1
{
    reopen(nullptr);
    // :authority and a host field naming the same authority: one host field, first, with
    // :authority's value; the client's is left out.
    assert_int_equal(
        run("GET", "/", {hdr("Host", "a.example:8443"), hdr("Accept", "x"), hdr("host", "A.EXAMPLE:8443")}, "HTTP/2"),
        200);
    assert_int_equal(g_headers.size(), 2);
    assert_string_equal(g_headers[0].first.c_str(), "host");
    assert_string_equal(g_headers[0].second.c_str(), "a.example:8443");
    assert_string_equal(g_headers[1].first.c_str(), "accept");
    assert_string_equal(env("HTTP_HOST"), "a.example:8443");
    assert_string_equal(env("SERVER_NAME"), "a.example");
    assert_string_equal(env("SERVER_PORT"), "8443");
    // :authority alone is at index 0 too, whatever came before it in the client's list.
    assert_int_equal(run("GET", "/", {hdr("Accept", "x"), hdr("Host", "b.example")}, "HTTP/2"), 200);
    assert_string_equal(g_headers[0].first.c_str(), "host");
    assert_string_equal(g_headers[0].second.c_str(), "b.example");
    assert_string_equal(g_headers[1].first.c_str(), "accept");
    // A host field naming another authority is malformed: 400, and the app never runs.
    g_env.clear();
    assert_int_equal(run("GET", "/", {hdr("Host", "a.example"), hdr("host", "evil.example")}, "HTTP/2"), 400);
    assert_true(g_env.empty());
}

void test_environ__underscore_names(void **) // rule: ENV-HDR-5
{
    reopen(nullptr);
    run("GET", "/", {hdr("X-Forwarded-For", "1.1.1.1"), hdr("X_Forwarded_For", "6.6.6.6")});
    assert_string_equal(env("HTTP_X_FORWARDED_FOR"), "1.1.1.1");
    bool listed = false;
    for (auto &h : g_headers) listed |= h.first == "x_forwarded_for";
    assert_true(listed);
}

void test_environ__http10(void **)
{
    reopen(nullptr);
    run("GET", "/", {}, "HTTP/1.0");
    assert_string_equal(env("SERVER_PROTOCOL"), "HTTP/1.0");
}

void test_environ__script_name(void **) // rule: ENV-PATH-1, ENV-PATH-4
{
    reopen("/mnt/app/");
    assert_int_equal(run("GET", "/mnt/app/x/y"), 200);
    assert_string_equal(env("SCRIPT_NAME"), "/mnt/app");
    assert_string_equal(env("PATH_INFO"), "/x/y");
    assert_int_equal(run("GET", "/mnt/app"), 200);
    assert_string_equal(env("PATH_INFO"), "");
    g_env.clear();
    assert_int_equal(run("GET", "/mnt/application"), 404); // not on a segment boundary
    assert_true(g_env.empty());
    assert_int_equal(run("GET", "/other"), 404);
    reopen(nullptr);
}

} // namespace

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_environ__get_keys),
        cmocka_unit_test(test_environ__post_content_keys),
        cmocka_unit_test(test_environ__head_and_options),
        cmocka_unit_test(test_environ__encoded_slash),
        cmocka_unit_test(test_environ__lowercase_percent_escapes),
        cmocka_unit_test(test_environ__content_length_zero),
        cmocka_unit_test(test_environ__absolute_form),
        cmocka_unit_test(test_environ__fragment_dropped),
        cmocka_unit_test(test_environ__server_name_fallbacks),
        cmocka_unit_test(test_environ__duplicate_headers),
        cmocka_unit_test(test_environ__h2_authority_is_host),
        cmocka_unit_test(test_environ__underscore_names),
        cmocka_unit_test(test_environ__http10),
        cmocka_unit_test(test_environ__script_name),
    };
    int rc = cmocka_run_group_tests(tests, nullptr, nullptr);
    cwsgi_testhost_close(g_host);
    return rc;
}
