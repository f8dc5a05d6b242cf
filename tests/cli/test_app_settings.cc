// test_app_settings.cc: the app's own settings (LIFE-SET-*, ABI 1.2) from both ends.
//   - In process: the test host's `settings` option reaches setting_get/setting_at.
//   - End to end: cwsgi-serve -c FILE with an [app] table serves settings_app.so (the
//     libmicrohttpd adapter, a loopback port), which answers with what it sees; --check hands
//     the table to init; a HUP re-reads the file and the new generation's init sees the new
//     table; a refused HUP changes nothing; with --preload init keeps the start's values.
// Every wait is bounded; every master started is killed by its process group at the end.
#include "cmocka.hh"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cwsgi/testhost.h"

extern char **environ;

namespace {

using clock_type = std::chrono::steady_clock;

std::string g_dir; // this run's scratch directory

std::string build_path(const std::string &rel)
{
    const char *dir = std::getenv("CWSGI_BUILD_DIR");
    return std::string(dir ? dir : ".") + "/" + rel;
}

// settings_app.so: where the meson build puts it, else where the CMake build does.
std::string app_path()
{
    const char *s = std::getenv("CWSGI_SETTINGS_APP");
    return s ? s : build_path("tests/cli/settings_app.so");
}

std::string read_file(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Writes `text` to `name` in the scratch directory as a deployment would: a new file renamed
// into place, so that a reader never sees half of it.
std::string write_file(const std::string &name, const std::string &text)
{
    std::string path = g_dir + "/" + name, tmp = path + ".new";
    std::ofstream(tmp) << text;
    if (std::rename(tmp.c_str(), path.c_str()) != 0) fail_msg("rename %s", path.c_str());
    return path;
}

bool has(const std::string &text, const std::string &part) { return text.find(part) != std::string::npos; }

// ---- in process: the test host --------------------------------------------------------------

std::string body_of(cwsgi_testhost *host, const char *target, uint32_t want_status = 200)
{
    cwsgi_test_response *r = cwsgi_testhost_get(host, target);
    assert_non_null(r);
    if (r->status != want_status) fail_msg("GET %s: status %u, body %s", target, r->status, r->body);
    std::string body(r->body, r->body_len);
    cwsgi_test_response_free(r);
    return body;
}

void test_app_settings__testhost_hands_them_over(void **) // rule: LIFE-SET-4, LIFE-SET-1
{
    const char *settings[] = {"greeting=hello", "model.path=/srv/a=b.bin", "empty=", nullptr};
    cwsgi_testhost_options opts{};
    opts.struct_size = sizeof opts;
    opts.settings = settings;
    char err[512] = "";
    cwsgi_testhost *host = cwsgi_testhost_open(app_path().c_str(), &opts, err, sizeof err);
    if (host == nullptr) fail_msg("open: %s", err);
    assert_string_equal(body_of(host, "/init").c_str(), "hello");
    assert_string_equal(body_of(host, "/worker").c_str(), "hello");
    assert_string_equal(body_of(host, "/get/model.path").c_str(), "/srv/a=b.bin"); // split at the first '='
    assert_string_equal(body_of(host, "/get/empty").c_str(), "");
    assert_string_equal(body_of(host, "/get/nope", 404).c_str(), "not set");
    assert_string_equal(body_of(host, "/all").c_str(), "greeting=hello\nmodel.path=/srv/a=b.bin\nempty=\n");
    cwsgi_testhost_close(host);

    // Without the option the app has no settings; its init sees none.
    host = cwsgi_testhost_open(app_path().c_str(), nullptr, err, sizeof err);
    if (host == nullptr) fail_msg("open: %s", err);
    assert_string_equal(body_of(host, "/init").c_str(), "(unset)");
    assert_string_equal(body_of(host, "/all").c_str(), "");
    cwsgi_testhost_close(host);
}

void test_app_settings__testhost_refuses_bad_entries(void **) // rule: LIFE-SET-4
{
    struct Case {
        std::vector<const char *> list;
        const char *message;
    } cases[] = {
        {{"greeting", nullptr}, "setting 'greeting' is not \"key=value\""},
        {{"=value", nullptr}, "setting '=value' is not \"key=value\""},
        {{"a=1", "a=2", nullptr}, "setting 'a' is given twice"},
    };
    for (Case &c : cases) {
        cwsgi_testhost_options opts{};
        opts.struct_size = sizeof opts;
        opts.settings = c.list.data();
        char err[512] = "";
        cwsgi_testhost *host = cwsgi_testhost_open(app_path().c_str(), &opts, err, sizeof err);
        if (host != nullptr || !has(err, c.message)) fail_msg("expected '%s', got '%s'", c.message, err);
    }
}

void test_app_settings__testhost_older_options_struct(void **) // rule: ABI-STRUCT-3, LIFE-SET-4
{
    // A test built against the 1.1 header passes a struct that ends before `settings`: the host
    // must not read past it, whatever lies there.
    cwsgi_testhost_options opts{};
    opts.struct_size = offsetof(cwsgi_testhost_options, settings);
    opts.settings = reinterpret_cast<const char *const *>(uintptr_t{1}); // would crash if read
    char err[512] = "";
    cwsgi_testhost *host = cwsgi_testhost_open(app_path().c_str(), &opts, err, sizeof err);
    if (host == nullptr) fail_msg("open: %s", err);
    assert_string_equal(body_of(host, "/all").c_str(), "");
    cwsgi_testhost_close(host);
}

void test_app_settings__predict_reads_model_path(void **) // rule: LIFE-SET-1
{
    // apps/predict: the setting model.path comes before $CWSGI_PREDICT_MODEL.
    std::string so = build_path("apps/predict.so");
    if (::access(so.c_str(), R_OK) != 0) {
        skip(); // built without the sample apps
    }
    std::string source = std::getenv("CWSGI_SOURCE_DIR") ? std::getenv("CWSGI_SOURCE_DIR") : ".";
    std::string good = "model.path=" + source + "/apps/predict/model.json";
    setenv("CWSGI_PREDICT_MODEL", "/nonexistent/from-env.json", 1);
    const char *settings[] = {good.c_str(), nullptr};
    cwsgi_testhost_options opts{};
    opts.struct_size = sizeof opts;
    opts.settings = settings;
    char err[512] = "";
    cwsgi_testhost *host = cwsgi_testhost_open(so.c_str(), &opts, err, sizeof err);
    if (host == nullptr) fail_msg("open: %s", err);
    assert_true(has(body_of(host, "/v1/model"), "\"weights\"")); // loaded, though the env names no file
    cwsgi_testhost_close(host);

    // A setting that names no file fails the worker's boot with that path; without the setting
    // the environment variable is used.
    const char *bad[] = {"model.path=/nonexistent/from-setting.json", nullptr};
    opts.settings = bad;
    host = cwsgi_testhost_open(so.c_str(), &opts, err, sizeof err);
    if (host != nullptr || !has(err, "/nonexistent/from-setting.json")) fail_msg("got '%s'", err);
    opts.settings = nullptr;
    host = cwsgi_testhost_open(so.c_str(), &opts, err, sizeof err);
    if (host != nullptr || !has(err, "/nonexistent/from-env.json")) fail_msg("got '%s'", err);
    unsetenv("CWSGI_PREDICT_MODEL");
}

// ---- end to end: cwsgi-serve ----------------------------------------------------------------

std::string serve_binary()
{
    const char *s = std::getenv("CWSGI_SERVE");
    return s ? s : build_path("src/cwsgi-serve/cwsgi-serve");
}

// Runs cwsgi-serve to its end (bounded: 20 s); its exit status and its output (both streams).
int run_to_end(std::vector<std::string> args, std::string &output)
{
    args.insert(args.begin(), serve_binary());
    std::string out_path = g_dir + "/run.out";
    pid_t pid = fork();
    if (pid == 0) {
        int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        std::vector<char *> argv;
        for (auto &a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        execve(argv[0], argv.data(), environ);
        _exit(127);
    }
    int st = 0;
    auto t0 = clock_type::now();
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (clock_type::now() - t0 > std::chrono::seconds(20)) {
            ::kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            output = read_file(out_path);
            return -1;
        }
        usleep(10000);
    }
    output = read_file(out_path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// A master: cwsgi-serve --adapter microhttpd -b 127.0.0.1:0 ARGS APP, its log in a file.
class Master {
public:
    explicit Master(std::vector<std::string> args) : log_(g_dir + "/master.log")
    {
        std::remove(log_.c_str());
        args.insert(args.begin(),
                    {serve_binary(), "--adapter", "microhttpd", "-b", "127.0.0.1:0", "--error-logfile", log_});
        args.push_back(app_path());
        pid_ = fork();
        if (pid_ == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); // never outlive a test killed by its timeout
            setpgid(0, 0);                    // a group of its own: the test kills it whole
            int null = ::open("/dev/null", O_WRONLY);
            dup2(null, 1);
            dup2(null, 2);
            std::vector<char *> argv;
            for (auto &a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            execve(argv[0], argv.data(), environ);
            _exit(127);
        }
        const std::string mark = "Listening at: http://127.0.0.1:";
        if (wait_for(mark, 15000)) {
            std::string log = read_file(log_);
            port_ = std::atoi(log.c_str() + log.find(mark) + mark.size());
        }
        if (port_ == 0) fail_msg("the master did not start; its log:\n%s", read_file(log_).c_str());
    }
    ~Master()
    {
        if (pid_ > 0) {
            ::kill(-pid_, SIGKILL);
            int st;
            waitpid(pid_, &st, 0);
        }
    }
    void signal(int sig) const { ::kill(pid_, sig); }
    std::string log() const { return read_file(log_); }

    bool wait_for(const std::string &needle, int timeout_ms, size_t count = 1) const
    {
        auto t0 = clock_type::now();
        for (;;) {
            std::string log = read_file(log_);
            size_t n = 0;
            for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++n;
            if (n >= count) return true;
            if (clock_type::now() - t0 > std::chrono::milliseconds(timeout_ms)) return false;
            usleep(10000);
        }
    }

    // GET `path`; the body of a 200, or "HTTP <status>" otherwise, or "" when no answer came.
    std::string get(const std::string &path) const
    {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return "";
        timeval tv{5, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(port_));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        std::string resp;
        if (::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0) {
            std::string req = "GET " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
            if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
                char buf[4096];
                ssize_t n;
                while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) resp.append(buf, static_cast<size_t>(n));
            }
        }
        ::close(fd);
        size_t end = resp.find("\r\n\r\n");
        if (resp.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) return "";
        if (resp.compare(9, 3, "200") != 0) return "HTTP " + resp.substr(9, 3);
        return resp.substr(end + 4);
    }

    // Polls GET `path` until it answers `want`, for up to `timeout_ms`.
    bool wait_answer(const std::string &path, const std::string &want, int timeout_ms) const
    {
        auto t0 = clock_type::now();
        while (get(path) != want) {
            if (clock_type::now() - t0 > std::chrono::milliseconds(timeout_ms)) return false;
            usleep(20000);
        }
        return true;
    }

private:
    std::string log_;
    pid_t pid_ = -1;
    int port_ = 0;
};

const char kFullTable[] = "workers = 1\n"
                          "graceful_timeout = 2\n"
                          "[app]\n"
                          "greeting = \"hi from the file\"\n"
                          "count = 0x2a\n"
                          "big = 1_000\n"
                          "ratio = 1.5\n"
                          "on = true\n"
                          "day = 1979-05-27\n"
                          "list = [1, 2]\n"
                          "names = ['a', \"b\\\"c\"]\n"
                          "when = 1979-05-27T07:32:00Z\n"
                          "model.path = '/srv/m.bin'\n"
                          "[app.db]\n"
                          "host = \"db.local\"\n";

void test_app_settings__served_from_the_file(void **) // rule: LIFE-SET-2, LIFE-SET-1
{
    std::string file = write_file("app.toml", kFullTable);
    Master m({"-c", file});
    assert_string_equal(m.get("/init").c_str(), "hi from the file");
    assert_string_equal(m.get("/get/model.path").c_str(), "/srv/m.bin");
    assert_string_equal(m.get("/get/db.host").c_str(), "db.local");
    assert_string_equal(m.get("/get/host").c_str(), "HTTP 404"); // keys are whole
    assert_string_equal(m.get("/all").c_str(), "greeting=hi from the file\n"
                                               "count=42\n"
                                               "big=1000\n"
                                               "ratio=1.5\n"
                                               "on=true\n"
                                               "day=1979-05-27\n"
                                               "list=[1, 2]\n"
                                               "names=[\"a\", \"b\\\"c\"]\n"
                                               "when=1979-05-27T07:32:00Z\n"
                                               "model.path=/srv/m.bin\n"
                                               "db.host=db.local\n");
}

void test_app_settings__check_hands_them_to_init(void **) // rule: LIFE-SET-3, LIFE-LOAD-4
{
    std::string out;
    std::string file = write_file("refuse.toml", "[app]\nrefuse = 'yes please'\n");
    int rc = run_to_end({"--check", "-c", file, app_path()}, out);
    if (rc != 4 || !has(out, "refused by the setting refuse = yes please")) {
        fail_msg("exit %d, output:\n%s", rc, out.c_str());
    }
    // Without the key the same app passes.
    file = write_file("fine.toml", "[app]\ngreeting = 'x'\n");
    rc = run_to_end({"--check", "-c", file, app_path()}, out);
    if (rc != 0) fail_msg("exit %d, output:\n%s", rc, out.c_str());
}

void test_app_settings__duplicate_name_refused(void **) // rule: LIFE-SET-2
{
    std::string out;
    std::string file = write_file("dup.toml", "[app]\n\"a.b\" = 1\n[app.a]\nb = 2\n");
    int rc = run_to_end({"--check", "-c", file, app_path()}, out);
    if (rc != 2 || !has(out, "dup.toml:4: app.a.b is given twice")) fail_msg("exit %d, output:\n%s", rc, out.c_str());
    // A NUL in a key could never be looked up with a NUL-terminated key.
    file = write_file("nul.toml", "[app]\n\"a\\u0000b\" = 1\n");
    rc = run_to_end({"--check", "-c", file, app_path()}, out);
    if (rc != 2 || !has(out, "nul.toml:2: app: a key holds a NUL character"))
        fail_msg("exit %d, output:\n%s", rc, out.c_str());
}

void test_app_settings__hup_rereads_the_table(void **) // rule: LIFE-SET-3, LIFE-ARB-3
{
    std::string file = write_file("hup.toml", "workers = 2\ngraceful_timeout = 2\n[app]\ngreeting = 'first'\n");
    Master m({"-c", file});
    assert_string_equal(m.get("/init").c_str(), "first");

    write_file("hup.toml", "workers = 2\ngraceful_timeout = 2\n[app]\ngreeting = 'second'\n");
    m.signal(SIGHUP);
    // The new generation loads the app and runs init anew; once the old one has drained, every
    // answer comes from it.
    if (!m.wait_answer("/init", "second", 20000))
        fail_msg("no answer from init's new settings; log:\n%s", m.log().c_str());
    if (!m.wait_for(") exited", 20000, 2)) fail_msg("the old generation did not end; log:\n%s", m.log().c_str());
    assert_string_equal(m.get("/init").c_str(), "second");
    assert_string_equal(m.get("/worker").c_str(), "second");

    // A file that does not parse is refused and changes nothing.
    write_file("hup.toml", "workers = 2\n[app]\n\"a.b\" = 1\na.b = 2\n");
    m.signal(SIGHUP);
    if (!m.wait_for("Reload refused", 10000)) fail_msg("no refusal; log:\n%s", m.log().c_str());
    assert_true(has(m.log(), "app.a.b is given twice"));
    for (int i = 0; i < 5; ++i) assert_string_equal(m.get("/init").c_str(), "second");
}

void test_app_settings__preload_keeps_inits_values(void **) // rule: LIFE-SET-3
{
    std::string file = write_file("pre.toml", "graceful_timeout = 2\n[app]\ngreeting = 'first'\n");
    Master m({"--preload", "-c", file});
    assert_string_equal(m.get("/init").c_str(), "first");
    write_file("pre.toml", "graceful_timeout = 2\n[app]\ngreeting = 'second'\n");
    m.signal(SIGHUP);
    // The master's init ran once; the new workers' worker_start sees the new table.
    if (!m.wait_answer("/worker", "second", 20000)) fail_msg("no new generation; log:\n%s", m.log().c_str());
    if (!m.wait_for(") exited", 20000, 1)) fail_msg("the old generation did not end; log:\n%s", m.log().c_str());
    assert_string_equal(m.get("/worker").c_str(), "second");
    assert_string_equal(m.get("/init").c_str(), "first");
}

int setup(void **)
{
    char tmpl[] = "/tmp/cwsgi-appset-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return -1;
    g_dir = tmpl;
    return 0;
}

int teardown(void **)
{
    std::string cmd = "rm -rf '" + g_dir + "'";
    return std::system(cmd.c_str()) == 0 ? 0 : -1;
}

} // namespace

int main()
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_app_settings__testhost_hands_them_over),
        cmocka_unit_test(test_app_settings__testhost_refuses_bad_entries),
        cmocka_unit_test(test_app_settings__testhost_older_options_struct),
        cmocka_unit_test(test_app_settings__predict_reads_model_path),
        cmocka_unit_test(test_app_settings__served_from_the_file),
        cmocka_unit_test(test_app_settings__check_hands_them_to_init),
        cmocka_unit_test(test_app_settings__duplicate_name_refused),
        cmocka_unit_test(test_app_settings__hup_rereads_the_table),
        cmocka_unit_test(test_app_settings__preload_keeps_inits_values),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
