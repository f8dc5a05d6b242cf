// test_arbiter.cc: the arbiter end to end. Each test starts a real master (the built cwsgi-serve,
// with its real command line and the libmicrohttpd adapter) on an ephemeral loopback port, talks
// HTTP to it, sends it real signals and checks what an operator would see: answers, the error
// log, the worker processes, the exit status. The app is tests/fixtures/arbiter_app.c. Every wait is
// bounded; every process started is killed by its pid at the end. The figures of the HUP and
// USR2 tests (requests sent and failed) are printed as "# ..." lines.
#include "cmocka.hh"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http_client.hh"

namespace {

using namespace cwsgi::testing;

std::string serve_binary() { return cwsgi::testing::serve_binary("src/cwsgi-serve/cwsgi-serve"); }

std::string fixture(int version)
{
    return build_path("tests/fixtures/fixture_arbiter_v" + std::to_string(version) + ".so");
}

// A scratch directory for one test, removed with its files at the end.
class TempDir {
public:
    TempDir()
    {
        char tmpl[] = "/tmp/cwsgi-arbiter-XXXXXX";
        path_ = ::mkdtemp(tmpl) ? tmpl : "/tmp";
    }
    ~TempDir()
    {
        std::string cmd = "rm -rf '" + path_ + "'";
        if (path_ != "/tmp" && std::system(cmd.c_str()) != 0) std::fprintf(stderr, "cannot remove %s\n", path_.c_str());
    }
    std::string file(const std::string &name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

// Copies `from` to `to` the way a deployment should: a new file renamed over the old one, so that
// workers still running the old one keep their mapping intact.
bool install_file(const std::string &from, const std::string &to)
{
    std::string tmp = to + ".new";
    {
        std::ifstream in(from, std::ios::binary);
        std::ofstream out(tmp, std::ios::binary);
        out << in.rdbuf();
        if (!out) return false;
    }
    return ::rename(tmp.c_str(), to.c_str()) == 0;
}

// ---- a master under test ----------------------------------------------------------------------

// Starts cwsgi-serve with `args` (APP last) plus "--adapter microhttpd -b 127.0.0.1:0
// --error-logfile LOG", with `env` added to its environment, and waits up to 15 s for
// "Listening at:" (port() is 0 when it never came, and for `expect_listening` false the wait is
// skipped). With `systemd_fd` >= 0, that listening socket is passed as systemd does
// (descriptor 3, LISTEN_FDS=1, LISTEN_PID=the server's pid) and no -b is added. The server's
// crashing workers leave no core files, and ASan lets a segfault be a segfault, so that the
// master sees the signal.
class Master : public ServeProcess {
public:
    Master(std::vector<std::string> args, const std::string &log_path, std::vector<std::string> env = {},
           bool expect_listening = true, int systemd_fd = -1)
        : ServeProcess(serve_binary(), with_adapter(std::move(args)),
                       options(log_path, std::move(env), expect_listening, systemd_fd))
    {
    }

private:
    static std::vector<std::string> with_adapter(std::vector<std::string> args)
    {
        args.insert(args.begin(), {"--adapter", "microhttpd"});
        return args;
    }
    static ServeOptions options(const std::string &log_path, std::vector<std::string> env, bool expect_listening,
                                int systemd_fd)
    {
        std::string asan = "ASAN_OPTIONS=handle_segv=0:handle_sigbus=0:detect_leaks=0";
        if (const char *old = std::getenv("ASAN_OPTIONS")) asan += std::string(":") + old;
        env.push_back(asan);
        ServeOptions o;
        o.start_timeout_ms = expect_listening ? 15000 : 0;
        o.bind = systemd_fd < 0;
        o.log_path = log_path;
        o.env = std::move(env);
        o.no_core = true;
        o.systemd_fd = systemd_fd;
        return o;
    }
};

// ---- an HTTP/1.1 client -----------------------------------------------------------------------

// Client::get() and read_whole() give status 0 unless the whole response came (refused, closed,
// timed out); requests here wait up to 10 s.
Response get_once(int port, const std::string &target, int timeout_ms = 10000)
{
    Client c(port);
    return c.get(target, timeout_ms);
}

// "hello v1 pid 123 worker 2\n" -> 123
pid_t pid_of(const Response &r)
{
    size_t at = r.body.find(" pid ");
    return at == std::string::npos ? 0 : static_cast<pid_t>(std::atol(r.body.c_str() + at + 5));
}

// A client loop on fresh connections, one request at a time, until stop(): how many it sent and
// how many got no 200 (refused, cut, or another status). Paced at about one request per
// millisecond, so that a reload that takes seconds on a slow machine never outlasts the loop's
// bound; done() says the bound was reached.
class Load {
public:
    explicit Load(int port) : port_(port)
    {
        thread_ = std::thread([this] {
            // Bounded: 100 000 requests or 120 s or until stopped, whichever comes first.
            auto t0 = Clock::now();
            for (int i = 0; i < 100000 && !stop_.load() && ms_since(t0) < 120000; ++i) {
                Response r = get_once(port_, "/hello", 10000);
                sent_.fetch_add(1);
                if (r.status != 200) {
                    failed_.fetch_add(1);
                    std::lock_guard<std::mutex> lk(mu_);
                    if (first_failure_.empty())
                        first_failure_ = "request " + std::to_string(i) + ": status " + std::to_string(r.status);
                }
                usleep(1000);
            }
            done_.store(true);
        });
    }
    ~Load() { stop(); }
    void stop()
    {
        stop_.store(true);
        if (thread_.joinable()) thread_.join();
    }
    long sent() const { return sent_.load(); }
    long failed() const { return failed_.load(); }
    bool done() const { return done_.load(); }
    std::string first_failure()
    {
        std::lock_guard<std::mutex> lk(mu_);
        return first_failure_;
    }

private:
    int port_;
    std::atomic<bool> stop_{false}, done_{false};
    std::atomic<long> sent_{0}, failed_{0};
    std::mutex mu_;
    std::string first_failure_;
    std::thread thread_;
};

// Waits until the load has sent `n` more requests (bounded by `timeout_ms`); false, with the
// reason printed, when the time runs out or the load's own bound ended it first.
bool wait_sent(const Load &load, long n, int timeout_ms)
{
    long target = load.sent() + n;
    auto t0 = Clock::now();
    while (load.sent() < target) {
        if (load.done()) {
            std::printf("# the load loop reached its bound after %ld requests\n", load.sent());
            return false;
        }
        if (ms_since(t0) > timeout_ms) {
            std::printf("# the load sent %ld of %ld requests in %d ms\n", load.sent() - (target - n), n, timeout_ms);
            return false;
        }
        usleep(2000);
    }
    return true;
}

// ---- a service manager's notify socket --------------------------------------------------------

// What systemd listens on for sd_notify(3): an AF_UNIX datagram socket, bound to a path or, for
// a name starting with '@', in the abstract namespace. env() is the NOTIFY_SOCKET=... to give
// the server; next() is the next datagram ("" after timeout_ms).
class NotifySocket {
public:
    explicit NotifySocket(const std::string &name) : name_(name)
    {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::memcpy(sa.sun_path, name.data(), std::min(name.size(), sizeof sa.sun_path - 1));
        if (name[0] == '@') sa.sun_path[0] = '\0';
        socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
        if (fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr *>(&sa), len) != 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }
    ~NotifySocket()
    {
        if (fd_ >= 0) ::close(fd_);
        if (name_[0] == '/') ::unlink(name_.c_str());
    }
    bool ok() const { return fd_ >= 0; }
    std::string env() const { return "NOTIFY_SOCKET=" + name_; }
    std::string next(int timeout_ms)
    {
        pollfd p{fd_, POLLIN, 0};
        if (fd_ < 0 || ::poll(&p, 1, timeout_ms) <= 0) return "";
        char buf[4096];
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
    }

private:
    std::string name_;
    int fd_ = -1;
};

// The value of `key` in a notification ("READY=1\nSTATUS=..." -> "1" for "READY"), or "" when
// the message has no such line.
std::string notify_field(const std::string &msg, const std::string &key)
{
    std::istringstream in(msg);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
    }
    return "";
}

// A notification on one line, for the "# ..." output: "READY=1\\nSTATUS=...".
std::string one_line(std::string msg)
{
    for (size_t at; (at = msg.find('\n')) != std::string::npos;) msg.replace(at, 1, "\\n");
    return msg;
}

uint64_t monotonic_usec_now()
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

// ---- the tests --------------------------------------------------------------------------------

void test_arbiter__one_worker_under_a_master(void **) // rule: LIFE-ARB-1, LIFE-ARB-10
{
    TempDir dir;
    Master m({fixture(1)}, dir.file("error.log"));
    assert_int_not_equal(m.port(), 0);
    // A master even with one worker: the answer comes from a child of the process we started.
    Response r = get_once(m.port(), "/hello");
    assert_int_equal(r.status, 200);
    std::vector<pid_t> kids = children_of(m.pid());
    assert_int_equal(kids.size(), 1);
    assert_int_equal(pid_of(r), kids[0]);
    assert_non_null(std::strstr(r.body.c_str(), "worker 1"));
    // "Listening at" comes after the worker booted.
    std::string log = m.log();
    assert_true(log.find("Booting worker") < log.find("Listening at:"));
    // Process titles.
    std::string title = slurp("/proc/" + std::to_string(kids[0]) + "/cmdline");
    assert_string_equal(title.c_str(), "cwsgi: worker 1");
    assert_int_equal(slurp("/proc/" + std::to_string(m.pid()) + "/cmdline").rfind("cwsgi: master [", 0), 0);
    m.signal(SIGTERM);
    int st = m.wait_exit(15000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

void test_arbiter__kill9_mid_request_respawns(void **) // rule: LIFE-ARB-2, LIFE-ARB-5
{
    TempDir dir;
    Master m({"-w", "2", fixture(1)}, dir.file("error.log"));
    assert_int_not_equal(m.port(), 0);
    // A kept-alive connection: its /hello names the worker, its /slow is then in that worker.
    Client victim(m.port());
    Response r = victim.get("/hello", 10000);
    assert_int_equal(r.status, 200);
    pid_t doomed = pid_of(r);
    assert_true(victim.send_get("/slow?20000"));
    assert_true(m.wait_for("slow: started", 10000));
    ::kill(doomed, SIGKILL);
    // The request in the dead worker is lost; everyone else is served.
    assert_int_equal(victim.read_whole(10000).status, 0);
    assert_true(m.wait_for("was sent SIGKILL!", 10000));
    int ok = 0;
    for (int i = 0; i < 30; ++i) ok += get_once(m.port(), "/hello").status == 200;
    assert_int_equal(ok, 30);
    assert_true(m.wait_workers(2, 10000));
    std::vector<pid_t> kids = children_of(m.pid());
    assert_true(std::find(kids.begin(), kids.end(), doomed) == kids.end());
    std::string log = m.log();
    assert_non_null(std::strstr(log.c_str(), "GET /slow?20000"));
    size_t at = log.rfind('\n', log.find("was sent SIGKILL!")) + 1;
    std::printf("# kill -9: %s\n", log.substr(at, log.find('\n', at) - at).c_str());
}

void test_arbiter__hung_worker_is_killed_after_timeout(void **) // rule: LIFE-ARB-11
{
    TempDir dir;
    // Cooperative mode (the fixture declares it): /spin blocks its event-loop thread.
    Master m({"-w", "2", "--timeout", "1.5", fixture(1)}, dir.file("error.log"));
    assert_int_not_equal(m.port(), 0);
    auto t0 = Clock::now();
    Client spin(m.port());
    assert_true(spin.send_get("/spin"));
    assert_true(m.wait_for("WORKER TIMEOUT", 15000));
    double after = ms_since(t0);
    assert_true(m.wait_for("was sent SIGABRT!", 10000));
    assert_int_equal(spin.read_whole(5000).status, 0);
    std::string log = m.log();
    size_t at = log.find("WORKER TIMEOUT");
    std::string line = log.substr(at, log.find('\n', at) - at);
    assert_non_null(std::strstr(line.c_str(), "GET /spin"));
    // Killed after --timeout (1.5 s), not long after (wide margin for a busy machine).
    assert_true(after >= 1400);
    assert_true(after < 12000);
    std::printf("# hung worker: killed %.0f ms after /spin began: %s\n", after, line.c_str());
    int ok = 0;
    for (int i = 0; i < 20; ++i) ok += get_once(m.port(), "/hello").status == 200;
    assert_int_equal(ok, 20);
    assert_true(m.wait_workers(2, 10000));
}

void test_arbiter__segfault_loses_one_request(void **) // rule: LIFE-ARB-5
{
    TempDir dir;
    Master m({"-w", "2", fixture(1)}, dir.file("error.log"));
    assert_int_not_equal(m.port(), 0);
    Response crash = get_once(m.port(), "/crash?x=1", 10000);
    assert_int_equal(crash.status, 0);
    assert_true(m.wait_for("was sent SIGSEGV!", 10000));
    std::string log = m.log();
    size_t at = log.find("was sent SIGSEGV!");
    std::string line = log.substr(at, log.find('\n', at) - at);
    assert_non_null(std::strstr(line.c_str(), "GET /crash?x=1"));
    int ok = 0;
    for (int i = 0; i < 30; ++i) ok += get_once(m.port(), "/hello").status == 200;
    assert_int_equal(ok, 30);
    assert_true(m.wait_workers(2, 10000));
}

void test_arbiter__hup_deploys_a_rebuilt_app(void **) // rule: LIFE-ARB-3, LIFE-ARB-4, LIFE-LOAD-5
{
    TempDir dir;
    std::string app = dir.file("app.so");
    assert_true(install_file(fixture(1), app));
    Master m({"-w", "2", app}, dir.file("error.log"));
    assert_int_not_equal(m.port(), 0);
    assert_non_null(std::strstr(get_once(m.port(), "/hello").body.c_str(), "hello v1"));
    Load load(m.port());
    assert_true(wait_sent(load, 50, 20000));
    assert_true(install_file(fixture(2), app));
    m.signal(SIGHUP);
    assert_true(m.wait_for("Reload done", 20000));
    // The old generation drains: only the new one (2 workers) remains.
    assert_true(m.wait_workers(2, 20000));
    assert_true(wait_sent(load, 50, 20000));
    load.stop();
    std::printf("# HUP under load: %ld requests sent, %ld failed\n", load.sent(), load.failed());
    if (load.failed() != 0) std::printf("# first failure: %s\n", load.first_failure().c_str());
    assert_int_equal(load.failed(), 0);
    for (int i = 0; i < 10; ++i) {
        Response r = get_once(m.port(), "/hello");
        assert_int_equal(r.status, 200);
        assert_non_null(std::strstr(r.body.c_str(), "hello v2"));
    }
}

void test_arbiter__reload_watches_the_app_file(void **) // rule: LIFE-ARB-16
{
    TempDir dir;
    std::string app = dir.file("app.so");
    assert_true(install_file(fixture(1), app));
    Master m({"-w", "2", "--reload", app}, dir.file("error.log"));
    assert_int_not_equal(m.port(), 0);
    assert_non_null(std::strstr(get_once(m.port(), "/hello").body.c_str(), "hello v1"));
    Load load(m.port());
    assert_true(wait_sent(load, 50, 20000));
    // No signal: the master sees the new file by itself.
    assert_true(install_file(fixture(2), app));
    assert_true(m.wait_for("Reloading: " + app + " changed (--reload)", 20000));
    assert_true(m.wait_for("Reload done", 20000));
    assert_true(m.wait_workers(2, 20000));
    assert_true(wait_sent(load, 50, 20000));
    load.stop();
    std::printf("# --reload under load: %ld requests sent, %ld failed\n", load.sent(), load.failed());
    assert_int_equal(load.failed(), 0);
    for (int i = 0; i < 10; ++i) {
        Response r = get_once(m.port(), "/hello");
        assert_int_equal(r.status, 200);
        assert_non_null(std::strstr(r.body.c_str(), "hello v2"));
    }
    // One change, one reload: the master does not keep reloading an unchanged file.
    assert_int_equal(count_of(m.text(), "Reloading: "), 1);
}

// Writes `text` to `path` as an editor or a deployment tool would: a new file renamed over it.
bool write_file(const std::string &path, const std::string &text)
{
    std::string tmp = path + ".new";
    {
        std::ofstream out(tmp, std::ios::binary);
        out << text;
        if (!out) return false;
    }
    return ::rename(tmp.c_str(), path.c_str()) == 0;
}

// Asks fresh connections for /hello until `n` distinct workers answered (up to `tries` requests
// or `timeout_ms`); their pids. A request that fails is counted in `failed`.
std::set<pid_t> wait_pids_seen(int port, size_t n, int tries, int timeout_ms, int &failed)
{
    std::set<pid_t> pids;
    auto t0 = Clock::now();
    for (int i = 0; i < tries && pids.size() < n && ms_since(t0) < timeout_ms; ++i) {
        Response r = get_once(port, "/hello");
        if (r.status == 200) {
            pids.insert(pid_of(r));
        } else {
            ++failed;
        }
    }
    return pids;
}

void test_arbiter__hup_rereads_the_config_file(void **) // rule: LIFE-ARB-3
{
    TempDir dir;
    std::string conf = dir.file("cwsgi.toml");
    assert_true(write_file(conf, "workers = 1\nenv = { ARBITER_MARK = \"one\" }\n"));
    Master m({"-c", conf, fixture(1)}, dir.file("error.log"));
    assert_int_not_equal(m.port(), 0);
    assert_true(m.wait_workers(1, 10000));
    Response r = get_once(m.port(), "/env");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.c_str(), "ARBITER_MARK=one\n");
    // The operator edits the file and sends HUP: the new generation has what the file says now.
    assert_true(write_file(conf, "workers = 3\nenv = { ARBITER_MARK = \"three\" }\n"));
    m.signal(SIGHUP);
    assert_true(m.wait_for("Reload done", 20000));
    assert_true(m.wait_workers(3, 20000));
    int failed = 0;
    std::set<pid_t> pids = wait_pids_seen(m.port(), 3, 600, 20000, failed);
    std::printf("# HUP with -c: %zu workers answered, %d requests failed\n", pids.size(), failed);
    assert_int_equal(pids.size(), 3);
    assert_int_equal(failed, 0);
    std::vector<pid_t> kids = children_of(m.pid());
    for (pid_t p : pids) assert_true(std::find(kids.begin(), kids.end(), p) != kids.end());
    for (int i = 0; i < 10; ++i) {
        r = get_once(m.port(), "/env");
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body.c_str(), "ARBITER_MARK=three\n");
    }
    // A file that no longer parses: the HUP is refused and the workers of before serve on.
    assert_true(write_file(conf, "workers = [3\nenv = { ARBITER_MARK = \"broken\" }\n"));
    m.signal(SIGHUP);
    assert_true(m.wait_for("Reload refused", 20000));
    std::string log = m.log();
    size_t at = log.find("Reload refused");
    std::printf("# %s\n", log.substr(at, log.find('\n', at) - at).c_str());
    assert_non_null(std::strstr(log.substr(at).c_str(), "cwsgi.toml"));
    assert_int_equal(count_of(log, "Reload done"), 1);
    assert_true(m.wait_workers(3, 10000));
    failed = 0;
    std::set<pid_t> after = wait_pids_seen(m.port(), 3, 600, 20000, failed);
    assert_int_equal(failed, 0);
    assert_true(after == pids); // the same processes: no new generation was started
    for (int i = 0; i < 10; ++i) {
        r = get_once(m.port(), "/env");
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body.c_str(), "ARBITER_MARK=three\n");
    }
    assert_int_equal(m.wait_exit(0), -1); // still running
}

void test_arbiter__hup_with_a_broken_build_keeps_serving(void **) // rule: LIFE-ARB-4
{
    TempDir dir;
    std::string app = dir.file("app.so");
    assert_true(install_file(fixture(1), app));
    Master m({"-w", "2", app}, dir.file("error.log"));
    assert_int_not_equal(m.port(), 0);
    // Not an ELF file: the new generation cannot load it.
    {
        std::ofstream bad(app + ".new", std::ios::binary);
        bad << "not a shared object\n";
    }
    assert_int_equal(::rename((app + ".new").c_str(), app.c_str()), 0);
    m.signal(SIGHUP);
    assert_true(m.wait_for("Reload failed", 20000));
    for (int i = 0; i < 10; ++i) {
        Response r = get_once(m.port(), "/hello");
        assert_int_equal(r.status, 200);
        assert_non_null(std::strstr(r.body.c_str(), "hello v1"));
    }
    assert_int_equal(m.wait_exit(0), -1); // still running
}

void test_arbiter__term_lets_requests_in_flight_finish(void **) // rule: LIFE-ARB-8, LIFE-STOP-4
{
    TempDir dir;
    std::string pidfile = dir.file("master.pid");
    Master m({"-w", "2", "--pid", pidfile, fixture(1)}, dir.file("error.log"));
    assert_int_not_equal(m.port(), 0);
    assert_int_equal(std::atol(slurp(pidfile).c_str()), m.pid());
    std::vector<std::unique_ptr<Client>> conns;
    for (int i = 0; i < 4; ++i) {
        conns.push_back(std::make_unique<Client>(m.port()));
        assert_true(conns.back()->send_get("/slow?1500"));
    }
    assert_true(m.wait_for("slow: started", 10000, 4));
    m.signal(SIGTERM);
    for (auto &c : conns) {
        Response r = c->read_whole(10000);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body.c_str(), "slow\n");
    }
    int st = m.wait_exit(15000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(::access(pidfile.c_str(), F_OK), -1); // removed at exit
    assert_non_null(std::strstr(m.log().c_str(), "Shutting down: Master"));
}

void test_arbiter__chdir_umask_user(void **) // rule: LIFE-ARB-9
{
    TempDir dir;
    ::chmod(dir.file("").c_str(), 0755);
    // A relative unix socket lands in --chdir, with the --umask mode.
    std::vector<std::string> args = {"-w", "1", "--chdir", dir.file(""), "--umask", "077", "-b", "unix:rel.sock"};
    bool root = ::getuid() == 0;
    if (root) args.insert(args.end(), {"--user", "nobody", "--group", "nogroup"});
    args.push_back(fixture(1));
    Master m(args, dir.file("error.log"));
    assert_int_not_equal(m.port(), 0);
    struct stat st {};
    assert_int_equal(::stat(dir.file("rel.sock").c_str(), &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 077, 0);
    if (!root) return; // switching users needs root
    std::vector<pid_t> kids = children_of(m.pid());
    assert_int_equal(kids.size(), 1);
    std::string status = slurp("/proc/" + std::to_string(kids[0]) + "/status");
    assert_non_null(std::strstr(status.c_str(), "\nUid:\t65534\t65534\t65534\t65534\n"));
    // The master keeps its identity (to re-exec and to bind).
    status = slurp("/proc/" + std::to_string(m.pid()) + "/status");
    assert_non_null(std::strstr(status.c_str(), "\nUid:\t0\t0\t0\t0\n"));
    assert_int_equal(get_once(m.port(), "/hello").status, 200);
}

void test_arbiter__adopts_systemd_sockets(void **) // rule: LIFE-ARB-7
{
    TempDir dir;
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
    assert_int_equal(::listen(fd, 64), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
    int port = ntohs(a.sin_port);
    Master m({"-w", "2", fixture(1)}, dir.file("error.log"), {}, true, fd);
    ::close(fd);
    // The master serves the socket it was given, not a -b of its own.
    assert_int_equal(m.port(), port);
    assert_int_equal(get_once(port, "/hello").status, 200);
    m.signal(SIGTERM);
    int st = m.wait_exit(15000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

void test_arbiter__quick_stop_on_int(void **) // rule: LIFE-ARB-8
{
    TempDir dir;
    Master m({"-w", "2", fixture(1)}, dir.file("error.log"));
    assert_int_not_equal(m.port(), 0);
    Client c(m.port());
    assert_true(c.send_get("/slow?20000"));
    assert_true(m.wait_for("slow: started", 10000));
    auto t0 = Clock::now();
    m.signal(SIGINT);
    int st = m.wait_exit(10000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(ms_since(t0) < 5000); // did not wait for the 20 s request
    assert_int_equal(c.read_whole(2000).status, 0);
}

void test_arbiter__ttin_ttou(void **) // rule: LIFE-ARB-2
{
    TempDir dir;
    Master m({"-w", "1", fixture(1)}, dir.file("error.log"));
    assert_int_not_equal(m.port(), 0);
    m.signal(SIGTTIN);
    assert_true(m.wait_for("Handling signal: TTIN", 5000));
    m.signal(SIGTTIN);
    assert_true(m.wait_workers(3, 10000));
    m.signal(SIGTTOU);
    assert_true(m.wait_workers(2, 10000));
    m.signal(SIGTTOU);
    assert_true(m.wait_workers(1, 10000));
    assert_true(m.wait_for("Handling signal: TTOU", 5000, 2));
    m.signal(SIGTTOU); // never below one
    assert_true(m.wait_for("Handling signal: TTOU", 5000, 3));
    usleep(300 * 1000); // a wrong extra TTOU would show now
    assert_int_equal(children_of(m.pid()).size(), 1);
    assert_int_equal(get_once(m.port(), "/hello").status, 200);
}

void test_arbiter__usr1_reopens_logs(void **) // rule: LIFE-ARB-12
{
    TempDir dir;
    std::string error_log = dir.file("error.log"), access_log = dir.file("access.log");
    Master m({"-w", "2", "--access-logfile", access_log, fixture(1)}, error_log);
    assert_int_not_equal(m.port(), 0);
    assert_int_equal(get_once(m.port(), "/hello").status, 200);
    assert_int_equal(::rename(error_log.c_str(), (error_log + ".1").c_str()), 0);
    assert_int_equal(::rename(access_log.c_str(), (access_log + ".1").c_str()), 0);
    m.signal(SIGUSR1);
    // The master reopens at once; each worker on its ticker: keep asking until both logs are new.
    auto t0 = Clock::now();
    bool fresh = false;
    while (!fresh && ms_since(t0) < 10000) {
        assert_int_equal(get_once(m.port(), "/hello").status, 200);
        m.signal(SIGWINCH); // logged by the master ("Handling signal: WINCH"), otherwise ignored
        fresh = slurp(access_log).find("GET /hello") != std::string::npos &&
                slurp(error_log).find("Handling signal: WINCH") != std::string::npos;
        usleep(20 * 1000);
    }
    assert_true(fresh);
    // Every worker writes to the new access log: both pids' requests reach it. Which worker
    // accepts a connection is the kernel's choice, so ask until both answered (bounded), rather
    // than a fixed 20 times that one worker may win all of on a busy machine.
    int failed = 0;
    std::set<pid_t> before = wait_pids_seen(m.port(), 2, 400, 10000, failed);
    assert_int_equal(failed, 0);
    assert_int_equal(before.size(), 2);
    assert_int_equal(count_of(slurp(access_log), "GET /hello"), count_of(slurp(access_log), "\n"));
}

void test_arbiter__usr2_reexec_under_load(void **) // rule: LIFE-ARB-6, LIFE-ARB-7
{
    TempDir dir;
    std::string pidfile = dir.file("master.pid");
    // The re-executed master is the old one's child; once the old one exits it becomes ours.
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    Master m({"-w", "2", "--pid", pidfile, fixture(1)}, dir.file("error.log"));
    assert_int_not_equal(m.port(), 0);
    Load load(m.port());
    assert_true(wait_sent(load, 50, 20000));
    m.signal(SIGUSR2);
    // The new master announces the same socket once its workers serve.
    assert_true(m.wait_for("Listening at: http://127.0.0.1:" + std::to_string(m.port()), 20000, 2));
    std::vector<pid_t> kids = children_of(m.pid());
    pid_t fresh = 0;
    for (pid_t k : kids) {
        if (slurp("/proc/" + std::to_string(k) + "/cmdline").rfind("cwsgi: master", 0) == 0) fresh = k;
    }
    assert_int_not_equal(fresh, 0);
    m.also_kill(fresh);
    assert_int_equal(std::atol(slurp(pidfile + ".2").c_str()), fresh);
    assert_true(wait_sent(load, 50, 20000));
    // The operator retires the old master; the new one serves on and takes the pid file over.
    m.signal(SIGTERM);
    int st = m.wait_exit(20000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    auto t0 = Clock::now();
    while (std::atol(slurp(pidfile).c_str()) != fresh && ms_since(t0) < 10000) usleep(10000);
    assert_int_equal(std::atol(slurp(pidfile).c_str()), fresh);
    assert_true(wait_sent(load, 50, 20000));
    load.stop();
    std::printf("# USR2 under load: %ld requests sent, %ld failed\n", load.sent(), load.failed());
    if (load.failed() != 0) std::printf("# first failure: %s\n", load.first_failure().c_str());
    assert_int_equal(load.failed(), 0);
    ::kill(fresh, SIGTERM);
    int fst = 0;
    pid_t got = 0;
    t0 = Clock::now();
    while ((got = waitpid(fresh, &fst, WNOHANG)) == 0 && ms_since(t0) < 15000) usleep(10000);
    assert_int_equal(got, fresh);
    assert_true(WIFEXITED(fst));
    assert_int_equal(WEXITSTATUS(fst), 0);
    prctl(PR_SET_CHILD_SUBREAPER, 0);
}

void test_arbiter__boot_error_stops_the_master(void **) // rule: LIFE-WORKER-2, LIFE-ARB-5
{
    TempDir dir;
    Master m({"-w", "2", fixture(1)}, dir.file("error.log"), {"ARBITER_FAIL_BOOT=1"}, false);
    int st = m.wait_exit(15000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 3);
    std::string log = m.log();
    assert_non_null(std::strstr(log.c_str(), "worker_start refused by the fixture"));
    assert_non_null(std::strstr(log.c_str(), "Reason: Worker failed to boot."));
    assert_true(count_of(log, "Booting worker") <= 2); // no respawn loop
    assert_null(std::strstr(log.c_str(), "Listening at:"));
}

void test_arbiter__load_error_stops_the_master(void **) // rule: LIFE-LOAD-2, LIFE-LOAD-5
{
    TempDir dir;
    Master m({"-w", "2", fixture(1)}, dir.file("error.log"), {"ARBITER_FAIL_INIT=1"}, false);
    int st = m.wait_exit(15000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 4);
    std::string log = m.log();
    assert_non_null(std::strstr(log.c_str(), "init refused by the fixture"));
    assert_non_null(std::strstr(log.c_str(), "Reason: App failed to load."));
    assert_true(count_of(log, "Booting worker") <= 2);
}

void test_arbiter__max_requests_recycles(void **) // rule: LIFE-ARB-13
{
    TempDir dir;
    Master m({"-w", "1", "--max-requests", "5", "--max-requests-jitter", "2", fixture(1)}, dir.file("error.log"));
    assert_int_not_equal(m.port(), 0);
    // A worker that reached its 5 (+0..2) requests serves on until its replacement serves, so
    // the count per worker is not exact; but the worker changes soon, and no request fails.
    std::set<pid_t> pids;
    auto t0 = Clock::now();
    int sent = 0;
    while (pids.size() < 3 && ms_since(t0) < 15000) {
        Response r = get_once(m.port(), "/hello");
        assert_int_equal(r.status, 200);
        pids.insert(pid_of(r));
        ++sent;
    }
    std::printf("# --max-requests 5: %d requests, %zu workers\n", sent, pids.size());
    assert_true(pids.size() >= 3);
    assert_non_null(std::strstr(m.log().c_str(), "Autorestarting worker after current request."));
}

void test_arbiter__harakiri_kills_a_long_request(void **) // rule: LIFE-ARB-14
{
    TempDir dir;
    Master m({"-w", "1", "--harakiri", "0.8", fixture(1)}, dir.file("error.log"));
    assert_int_not_equal(m.port(), 0);
    Response r = get_once(m.port(), "/slow?20000", 15000);
    assert_int_equal(r.status, 0);
    std::string log = m.log();
    assert_non_null(std::strstr(log.c_str(), "HARAKIRI: req"));
    assert_non_null(std::strstr(log.c_str(), "GET /slow?20000"));
    assert_int_equal(get_once(m.port(), "/hello").status, 200);
}

void test_arbiter__max_worker_memory_recycles(void **) // rule: LIFE-ARB-15
{
    TempDir dir;
    Master m({"-w", "1", "--max-worker-memory", std::to_string(200u << 20), fixture(1)}, dir.file("error.log"));
    assert_int_not_equal(m.port(), 0);
    Response before = get_once(m.port(), "/hello");
    assert_int_equal(get_once(m.port(), "/grow?256").status, 200);
    assert_true(m.wait_for("above --max-worker-memory", 10000));
    auto t0 = Clock::now();
    pid_t now_pid = pid_of(before);
    while (now_pid == pid_of(before) && ms_since(t0) < 10000) now_pid = pid_of(get_once(m.port(), "/hello"));
    assert_int_not_equal(now_pid, pid_of(before));
}

void test_arbiter__preload_loads_in_the_master(void **) // rule: LIFE-LOAD-1, LIFE-LOAD-5
{
    TempDir dir;
    // With --preload an init failure is the master's own, before any worker exists.
    Master bad({"-w", "2", "--preload", fixture(1)}, dir.file("bad.log"), {"ARBITER_FAIL_INIT=1"}, false);
    int st = bad.wait_exit(15000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 4);
    assert_null(std::strstr(bad.log().c_str(), "Booting worker"));
    std::string app = dir.file("app.so");
    assert_true(install_file(fixture(1), app));
    Master m({"-w", "2", "--preload", app}, dir.file("error.log"));
    assert_int_not_equal(m.port(), 0);
    assert_true(install_file(fixture(2), app));
    m.signal(SIGHUP);
    assert_true(m.wait_for("Reload done", 20000));
    // HUP cannot change preloaded code.
    assert_non_null(std::strstr(get_once(m.port(), "/hello").body.c_str(), "hello v1"));
}

void test_arbiter__sd_notify_ready_reload_stop(void **) // rule: LIFE-ARB-10, LIFE-ARB-17
{
    TempDir dir;
    NotifySocket sd(dir.file("notify.sock"));
    assert_true(sd.ok());
    std::string conf = dir.file("cwsgi.toml");
    assert_true(write_file(conf, "workers = 2\n"));
    Master m({"-c", conf, fixture(1)}, dir.file("error.log"), {sd.env()});
    assert_int_not_equal(m.port(), 0);
    // READY=1 once the workers serve, so after the Listening line; no MAINPID for the process
    // systemd started itself.
    std::string msg = sd.next(15000);
    std::printf("# notify: %s\n", one_line(msg).c_str());
    assert_string_equal(notify_field(msg, "READY").c_str(), "1");
    assert_false(notify_field(msg, "STATUS").empty());
    assert_string_equal(notify_field(msg, "MAINPID").c_str(), "");
    assert_non_null(std::strstr(m.log().c_str(), "Listening at:"));
    assert_int_equal(get_once(m.port(), "/hello").status, 200);
    // HUP: RELOADING=1 with this machine's CLOCK_MONOTONIC in microseconds (Type=notify-reload
    // needs it), then READY=1 once the new generation serves.
    uint64_t before = monotonic_usec_now();
    m.signal(SIGHUP);
    msg = sd.next(15000);
    uint64_t after = monotonic_usec_now();
    std::printf("# notify: %s\n", one_line(msg).c_str());
    assert_string_equal(notify_field(msg, "RELOADING").c_str(), "1");
    uint64_t stamp = std::strtoull(notify_field(msg, "MONOTONIC_USEC").c_str(), nullptr, 10);
    assert_true(stamp >= before && stamp <= after);
    msg = sd.next(20000);
    assert_string_equal(notify_field(msg, "READY").c_str(), "1");
    assert_non_null(std::strstr(m.log().c_str(), "Reload done"));
    // A HUP whose configuration does not parse still ends with READY=1, or `systemctl reload`
    // would wait for it until its timeout.
    assert_true(write_file(conf, "workers = [2\n"));
    m.signal(SIGHUP);
    msg = sd.next(15000);
    assert_string_equal(notify_field(msg, "RELOADING").c_str(), "1");
    msg = sd.next(15000);
    std::printf("# notify: %s\n", one_line(msg).c_str());
    assert_string_equal(notify_field(msg, "READY").c_str(), "1");
    assert_non_null(std::strstr(notify_field(msg, "STATUS").c_str(), "refused"));
    // TERM: STOPPING=1, then a clean exit; nothing else was sent on the way.
    m.signal(SIGTERM);
    msg = sd.next(15000);
    assert_string_equal(notify_field(msg, "STOPPING").c_str(), "1");
    int st = m.wait_exit(15000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(sd.next(200).c_str(), "");
}

void test_arbiter__sd_notify_follows_a_reexec(void **) // rule: LIFE-ARB-6, LIFE-ARB-17
{
    TempDir dir;
    // An abstract socket this time, as systemd's own is on some systems.
    NotifySocket sd("@cwsgi-test-notify-" + std::to_string(::getpid()));
    assert_true(sd.ok());
    prctl(PR_SET_CHILD_SUBREAPER, 1); // the re-executed master becomes ours when the old one exits
    Master m({"-w", "1", fixture(1)}, dir.file("error.log"), {sd.env()});
    assert_int_not_equal(m.port(), 0);
    assert_string_equal(notify_field(sd.next(15000), "READY").c_str(), "1");
    // USR2: the new master reports READY=1 with its own pid as the service's main pid.
    m.signal(SIGUSR2);
    std::string msg = sd.next(20000);
    std::printf("# notify: %s\n", one_line(msg).c_str());
    assert_string_equal(notify_field(msg, "READY").c_str(), "1");
    pid_t fresh = static_cast<pid_t>(std::atol(notify_field(msg, "MAINPID").c_str()));
    assert_true(fresh > 0 && fresh != m.pid());
    m.also_kill(fresh);
    std::vector<pid_t> kids = children_of(m.pid());
    assert_true(std::find(kids.begin(), kids.end(), fresh) != kids.end());
    // TERM to the old master: the service goes on, so no STOPPING=1 from it; the new master
    // repeats MAINPID once the old one is gone.
    m.signal(SIGTERM);
    int st = m.wait_exit(20000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    msg = sd.next(10000);
    std::printf("# notify: %s\n", one_line(msg).c_str());
    assert_string_equal(notify_field(msg, "STOPPING").c_str(), "");
    assert_int_equal(std::atol(notify_field(msg, "MAINPID").c_str()), fresh);
    assert_int_equal(get_once(m.port(), "/hello").status, 200);
    ::kill(fresh, SIGTERM);
    assert_string_equal(notify_field(sd.next(15000), "STOPPING").c_str(), "1");
    int fst = 0;
    pid_t got = 0;
    auto t0 = Clock::now();
    while ((got = waitpid(fresh, &fst, WNOHANG)) == 0 && ms_since(t0) < 15000) usleep(10000);
    assert_int_equal(got, fresh);
    assert_true(WIFEXITED(fst));
    assert_int_equal(WEXITSTATUS(fst), 0);
    prctl(PR_SET_CHILD_SUBREAPER, 0);
}
} // namespace

int main()
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arbiter__one_worker_under_a_master),
        cmocka_unit_test(test_arbiter__kill9_mid_request_respawns),
        cmocka_unit_test(test_arbiter__hung_worker_is_killed_after_timeout),
        cmocka_unit_test(test_arbiter__segfault_loses_one_request),
        cmocka_unit_test(test_arbiter__hup_deploys_a_rebuilt_app),
        cmocka_unit_test(test_arbiter__reload_watches_the_app_file),
        cmocka_unit_test(test_arbiter__hup_rereads_the_config_file),
        cmocka_unit_test(test_arbiter__hup_with_a_broken_build_keeps_serving),
        cmocka_unit_test(test_arbiter__term_lets_requests_in_flight_finish),
        cmocka_unit_test(test_arbiter__chdir_umask_user),
        cmocka_unit_test(test_arbiter__adopts_systemd_sockets),
        cmocka_unit_test(test_arbiter__quick_stop_on_int),
        cmocka_unit_test(test_arbiter__ttin_ttou),
        cmocka_unit_test(test_arbiter__usr1_reopens_logs),
        cmocka_unit_test(test_arbiter__usr2_reexec_under_load),
        cmocka_unit_test(test_arbiter__boot_error_stops_the_master),
        cmocka_unit_test(test_arbiter__load_error_stops_the_master),
        cmocka_unit_test(test_arbiter__max_requests_recycles),
        cmocka_unit_test(test_arbiter__harakiri_kills_a_long_request),
        cmocka_unit_test(test_arbiter__max_worker_memory_recycles),
        cmocka_unit_test(test_arbiter__preload_loads_in_the_master),
        cmocka_unit_test(test_arbiter__sd_notify_ready_reload_stop),
        cmocka_unit_test(test_arbiter__sd_notify_follows_a_reexec),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
