// test_middleware.cc: the middlewares of middleware/ loaded into the in-process test host as a
// server loads them, with their inner apps named by the environment variables cwsgi-serve sets
// (CWSGI_INNER_APP, CWSGI_LINT, CWSGI_MOUNTS): timing around hello, lint around well-behaved
// apps (no finding) and around each conformance/apps/bad_*.c (exactly its finding, in both
// modes), mount dispatching to env and hello, and lint's transparency through a recording
// server table (a send_file stays a send_file; the cooperative flag passes through). The
// conformance suite under lint on each adapter is conformance/lint_run.py.
#include <cwsgi/testhost.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <strings.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "../cmocka.hh"

namespace {

std::string build_dir()
{
    const char *d = std::getenv("CWSGI_BUILD_DIR");
    if (d == nullptr) {
        print_message("CWSGI_BUILD_DIR is not set: run through ctest or meson test\n");
        skip();
    }
    return d;
}

std::string slurp(const std::string &path)
{
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Opens middleware `mw` with the environment `env` (NAME=VALUE each), logging to a file whose
// contents `close_host` returns.
struct Host {
    cwsgi_testhost *host = nullptr;
    std::string log;
};

Host open_mw(const std::string &mw, const std::vector<std::pair<std::string, std::string>> &env,
             const char *script_name = nullptr)
{
    for (auto &[k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    Host h;
    char tmpl[] = "/tmp/cwsgi-mw-log-XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    close(fd);
    h.log = tmpl;
    cwsgi_testhost_options o{};
    o.struct_size = sizeof o;
    o.log_level = CWSGI_LOG_INFO;
    o.error_log_path = h.log.c_str();
    o.script_name = script_name;
    char err[512] = {0};
    h.host = cwsgi_testhost_open((build_dir() + "/middleware/" + mw + ".so").c_str(), &o, err, sizeof err);
    if (h.host == nullptr) print_message("open %s: %s\n", mw.c_str(), err);
    assert_non_null(h.host);
    for (auto &[k, v] : env) unsetenv(k.c_str());
    return h;
}

std::string close_host(Host &h)
{
    cwsgi_testhost_close(h.host);
    std::string log = slurp(h.log);
    unlink(h.log.c_str());
    return log;
}

size_t count(const std::string &hay, const std::string &needle)
{
    size_t n = 0;
    for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
    return n;
}

cwsgi_test_response *post(cwsgi_testhost *host, const char *target, const char *body)
{
    cwsgi_test_request r{};
    r.struct_size = sizeof r;
    r.method = "POST";
    r.target = target;
    r.body = body;
    r.body_len = std::strlen(body);
    cwsgi_test_response *resp = nullptr;
    assert_int_equal(cwsgi_testhost_request(host, &r, &resp), CWSGI_OK);
    return resp;
}

// rule: COMP-MW-1, COMP-MW-2
void test_timing__wraps_hello(void **)
{
    Host h = open_mw("timing", {{"CWSGI_INNER_APP", build_dir() + "/apps/hello.so"}});
    cwsgi_test_response *r = cwsgi_testhost_get(h.host, "/greet");
    assert_int_equal(r->status, 200);
    assert_true(std::strstr(r->body, "Hello") != nullptr);
    cwsgi_test_response_free(r);
    std::string log = close_host(h);
    assert_int_equal(count(log, "timing: GET /greet handle "), 1);
}

// rule: COMP-MW-4
void test_mw__missing_inner_app_refuses_to_load(void **)
{
    cwsgi_testhost_options o{};
    o.struct_size = sizeof o;
    char err[512] = {0};
    unsetenv("CWSGI_INNER_APP");
    cwsgi_testhost *host = cwsgi_testhost_open((build_dir() + "/middleware/lint.so").c_str(), &o, err, sizeof err);
    assert_null(host);
}

// rule: COMP-LINT-3, COMP-LINT-4
void test_lint__clean_apps_have_no_findings(void **)
{
    for (const char *app : {"hello", "echo", "env", "stream"}) {
        Host h = open_mw("lint", {{"CWSGI_INNER_APP", build_dir() + "/apps/" + app + ".so"}});
        cwsgi_test_response_free(cwsgi_testhost_get(h.host, "/"));
        cwsgi_test_response *r = post(h.host, "/echo?x=1", "some body bytes");
        assert_true(r->status >= 200 && r->status < 600);
        cwsgi_test_response_free(r);
        std::string log = close_host(h);
        if (count(log, "): 0 findings, app 0, server 0, 2 requests") != 1) print_message("%s\n", log.c_str());
        assert_int_equal(count(log, "): 0 findings, app 0, server 0, 2 requests"), 1);
        assert_int_equal(count(log, "cwsgi-lint:"), 1);
    }
}

struct BadCase {
    const char *app;
    const char *rule;     // the one finding expected
    uint32_t warn_status; // what the client gets in warn mode
};

// rule: COMP-LINT-1, COMP-LINT-2, COMP-LINT-5, RESP-STATE-2/3, RESP-HDR-2/3, RESP-LEN-3, RESP-INFO-1,
// RESP-NOBODY-1
void test_lint__bad_apps_have_exactly_their_finding(void **)
{
    const BadCase cases[] = {
        {"after_commit", "RESP-STATE-2", 200},
        {"hop", "RESP-HDR-3", 200},
        {"crlf", "RESP-HDR-2", 200},
        {"length", "RESP-LEN-3", 200},
        {"write_after_finish", "RESP-STATE-3", 200},
        {"read_past", "COMP-LINT-5", 200},
        {"info_late", "RESP-INFO-1", 200},
        {"nobody", "RESP-NOBODY-1", 204},
    };
    for (const BadCase &c : cases) {
        for (const char *mode : {"warn", "fail"}) {
            Host h = open_mw(
                "lint", {{"CWSGI_INNER_APP", build_dir() + "/conformance/bad_" + c.app + ".so"}, {"CWSGI_LINT", mode}});
            cwsgi_test_response *r = post(h.host, "/bad", "0123456789");
            uint32_t status = r->status;
            cwsgi_test_response_free(r);
            std::string log = close_host(h);
            std::string finding = std::string("cwsgi-lint: ") + c.rule + " (app): ";
            if (count(log, finding) != 1 || count(log, "cwsgi-lint: ") != 2) {
                print_message("bad_%s (%s):\n%s\n", c.app, mode, log.c_str());
            }
            assert_int_equal(count(log, finding), 1);               // exactly its finding,
            assert_int_equal(count(log, "cwsgi-lint: "), 2);        // and the summary line
            assert_int_equal(count(log, "[POST /bad request "), 1); // naming the request
            assert_int_equal(count(log, std::string("1 findings, app 1, server 0 (") + c.rule + " x1)"), 1);
            bool committed_first = std::strcmp(c.app, "after_commit") == 0 || std::strcmp(c.app, "length") == 0 ||
                                   std::strcmp(c.app, "write_after_finish") == 0;
            // fail mode: 500 when the finding came before commit (RESP-ERR-1), else the cut
            // response keeps the status already sent; read_past is a SHOULD and never fails.
            uint32_t want = std::strcmp(mode, "warn") == 0 || committed_first || std::strcmp(c.app, "read_past") == 0
                                ? c.warn_status
                                : 500;
            if (status != want) print_message("bad_%s (%s): status %u, want %u\n", c.app, mode, status, want);
            assert_int_equal(status, want);
        }
    }
}

// rule: COMP-MOUNT-1, COMP-MOUNT-2, COMP-MW-3, ENV-PATH-2
void test_mount__dispatches_by_prefix(void **)
{
    std::string mounts = "/x=" + build_dir() + "/apps/env.so\n/=" + build_dir() + "/apps/hello.so\n";
    Host h = open_mw("mount", {{"CWSGI_MOUNTS", mounts}});
    cwsgi_test_response *r = cwsgi_testhost_get(h.host, "/x/a/b?q=1");
    assert_int_equal(r->status, 200);
    assert_true(std::strstr(r->body, "\"SCRIPT_NAME\": \"/x\"") != nullptr ||
                std::strstr(r->body, "\"SCRIPT_NAME\":\"/x\"") != nullptr);
    assert_true(std::strstr(r->body, "\"PATH_INFO\": \"/a/b\"") != nullptr ||
                std::strstr(r->body, "\"PATH_INFO\":\"/a/b\"") != nullptr);
    cwsgi_test_response_free(r);
    r = cwsgi_testhost_get(h.host, "/x");
    assert_true(std::strstr(r->body, "\"PATH_INFO\": \"\"") != nullptr ||
                std::strstr(r->body, "\"PATH_INFO\":\"\"") != nullptr);
    cwsgi_test_response_free(r);
    r = cwsgi_testhost_get(h.host, "/xy"); // not a segment boundary: the fallback
    assert_true(std::strstr(r->body, "Hello") != nullptr);
    cwsgi_test_response_free(r);
    close_host(h);
}

// rule: COMP-MOUNT-3
void test_mount__under_script_name_and_404(void **)
{
    std::string mounts = "/x=" + build_dir() + "/apps/env.so\n";
    Host h = open_mw("mount", {{"CWSGI_MOUNTS", mounts}}, "/base");
    cwsgi_test_response *r = cwsgi_testhost_get(h.host, "/base/x/y");
    assert_int_equal(r->status, 200);
    assert_true(std::strstr(r->body, "/base/x") != nullptr);
    cwsgi_test_response_free(r);
    r = cwsgi_testhost_get(h.host, "/base/other");
    assert_int_equal(r->status, 404);
    cwsgi_test_response_free(r);
    close_host(h);
}

// A recording server table: just enough of a server for lint and file_app, counting the body
// calls lint forwards.
struct Recorder {
    int send_files = 0, writes = 0, finishes = 0;
    int fd = -1;
    int64_t offset = 0, count = 0;
    void *user = nullptr;
    std::string log;
    std::vector<std::unique_ptr<char[]>> arena;
} rec;

cwsgi_str lit(const char *s) { return cwsgi_str{s, std::strlen(s)}; }

int32_t rec_request_info(cwsgi_request *, cwsgi_request_info *info)
{
    uint32_t size = info->struct_size;
    std::memset(info, 0, size);
    info->struct_size = size;
    info->http_major = info->http_minor = 1;
    info->content_length = 0;
    info->method = lit("GET");
    info->target = info->raw_path = info->path_info = lit("/file");
    info->script_name = info->query_string = info->remote_addr = info->remote_port = lit("");
    info->scheme = lit("http");
    info->protocol = lit("HTTP/1.1");
    info->server_name = info->local_addr = lit("127.0.0.1");
    info->server_port = info->local_port = lit("80");
    info->request_id = 7;
    return CWSGI_OK;
}
// The environ that request_info implies (ENV-INFO-2): lint compares the two views.
int32_t rec_environ_get(cwsgi_request *, const char *key, cwsgi_str *out)
{
    static const char *const kEnv[][2] = {
        {"REQUEST_METHOD", "GET"},    {"REQUEST_URI", "/file"},     {"cwsgi.raw_path", "/file"},
        {"PATH_INFO", "/file"},       {"cwsgi.url_scheme", "http"}, {"SERVER_PROTOCOL", "HTTP/1.1"},
        {"SERVER_NAME", "127.0.0.1"}, {"SERVER_PORT", "80"},        {"cwsgi.local_addr", "127.0.0.1"},
        {"cwsgi.local_port", "80"},   {"cwsgi.request_id", "7"},    {"cwsgi.version", "1.1"},
        {"SCRIPT_NAME", ""},          {"QUERY_STRING", ""},         {"REMOTE_ADDR", ""},
        {"REMOTE_PORT", ""},
    };
    for (const auto &kv : kEnv) {
        if (std::strcmp(key, kv[0]) == 0) {
            *out = lit(kv[1]);
            return CWSGI_OK;
        }
    }
    return CWSGI_E_NOTFOUND;
}
int32_t rec_header_at(cwsgi_request *, size_t index, cwsgi_str *name, cwsgi_str *value)
{
    if (index > 0) return CWSGI_E_NOTFOUND;
    *name = lit("host");
    *value = lit("localhost");
    return CWSGI_OK;
}
int32_t rec_header_find(cwsgi_request *, const char *name, size_t nth, cwsgi_str *value)
{
    if (nth > 0 || strcasecmp(name, "host") != 0) return CWSGI_E_NOTFOUND;
    *value = lit("localhost");
    return CWSGI_OK;
}
int32_t rec_start_response(cwsgi_request *, uint32_t, const char *, const cwsgi_header *, size_t, uint32_t)
{
    return CWSGI_OK;
}
int32_t rec_write(cwsgi_request *, const void *, size_t) { return ++rec.writes, CWSGI_OK; }
int32_t rec_send_file(cwsgi_request *, int fd, int64_t offset, int64_t count)
{
    ++rec.send_files;
    rec.fd = fd;
    rec.offset = offset;
    rec.count = count;
    return CWSGI_OK;
}
int32_t rec_finish(cwsgi_request *) { return ++rec.finishes, CWSGI_OK; }
void *rec_alloc(cwsgi_request *, size_t size)
{
    rec.arena.push_back(std::make_unique<char[]>(size + 16));
    return rec.arena.back().get();
}
int32_t rec_log(cwsgi_request *, uint32_t, const char *msg, size_t len)
{
    rec.log.append(msg, len).append("\n");
    return CWSGI_OK;
}
void rec_set_user_data(cwsgi_request *, void *p) { rec.user = p; }
void *rec_get_user_data(cwsgi_request *) { return rec.user; }

// rule: COMP-LINT-3, RESP-FILE-1
void test_lint__send_file_stays_send_file_and_cooperative_passes(void **)
{
    cwsgi_server_api api{};
    api.struct_size = sizeof api;
    api.abi_major = CWSGI_ABI_MAJOR;
    api.abi_minor = CWSGI_ABI_MINOR;
    api.capabilities = CWSGI_CAP_SENDFILE;
    api.request_info = rec_request_info;
    api.environ_get = rec_environ_get;
    api.header_at = rec_header_at;
    api.header_find = rec_header_find;
    api.start_response = rec_start_response;
    api.write = rec_write;
    api.send_file = rec_send_file;
    api.finish = rec_finish;
    api.alloc = rec_alloc;
    api.log = rec_log;
    api.set_user_data = rec_set_user_data;
    api.get_user_data = rec_get_user_data;
    std::string file = build_dir() + "/middleware/lint.so"; // any file of known size
    setenv("CWSGI_TEST_FILE", file.c_str(), 1);
    setenv("CWSGI_INNER_APP", (build_dir() + "/tests/middleware/file_app.so").c_str(), 1);
    void *dl = dlopen((build_dir() + "/middleware/lint.so").c_str(), RTLD_NOW | RTLD_LOCAL);
    assert_non_null(dl);
    auto entry = reinterpret_cast<cwsgi_entry_fn>(dlsym(dl, CWSGI_ENTRY_SYMBOL));
    assert_non_null(entry);
    const cwsgi_app_desc *desc = nullptr;
    assert_int_equal(entry(&api, &desc), CWSGI_OK);
    unsetenv("CWSGI_INNER_APP");
    assert_true((desc->flags & CWSGI_APP_COOPERATIVE) != 0); // the inner app's promise, kept
    assert_int_equal(desc->thread_safety, CWSGI_THREADS_SAFE);
    assert_int_equal(desc->abi_minor, 1);
    void *state = nullptr;
    char err[CWSGI_ERRBUF_SIZE] = {0};
    assert_int_equal(desc->init(&api, &state, err, sizeof err), CWSGI_OK);
    auto *req = reinterpret_cast<cwsgi_request *>(&rec); // opaque to lint: only handed back
    assert_int_equal(desc->handle(state, req), CWSGI_OK);
    desc->on_request_end(state, req, CWSGI_OK);
    desc->destroy(state);
    unsetenv("CWSGI_TEST_FILE");
    assert_int_equal(rec.send_files, 1); // forwarded as a send_file,
    assert_int_equal(rec.writes, 0);     // never turned into writes
    assert_int_equal(rec.offset, 0);
    assert_int_equal(rec.count, -1); // with the app's own arguments
    assert_true(rec.fd >= 0);
    assert_int_equal(rec.finishes, 1);
    if (rec.log.find("0 findings, app 0, server 0, 1 requests") == std::string::npos)
        print_message("%s", rec.log.c_str());
    assert_true(rec.log.find("0 findings, app 0, server 0, 1 requests") != std::string::npos);
}

} // namespace

int main()
{
    const CMUnitTest tests[] = {
        cmocka_unit_test(test_timing__wraps_hello),
        cmocka_unit_test(test_mw__missing_inner_app_refuses_to_load),
        cmocka_unit_test(test_lint__clean_apps_have_no_findings),
        cmocka_unit_test(test_lint__bad_apps_have_exactly_their_finding),
        cmocka_unit_test(test_mount__dispatches_by_prefix),
        cmocka_unit_test(test_mount__under_script_name_and_404),
        cmocka_unit_test(test_lint__send_file_stays_send_file_and_cooperative_passes),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
