// test_upstream.cc: end-to-end test of apps/upstream under cwsgi-serve --adapter microhttpd, the
// acceptance point of wait_fd (THR-5, THR-6): 256 concurrent GET /fetch on ONE event-loop thread
// (-k gevent --loop-threads 1) finish in about one upstream delay D, and a GET /health sent
// meanwhile is answered in milliseconds. Were wait_fd to block the loop thread, the fetches
// would take 256 x D and /health would wait behind them. The same load under -k gthread
// --threads 4 takes about 256 / 4 x D, and the test prints it to show the difference.
//
// The test runs everything itself, over loopback only: a slow upstream (one epoll thread: it
// reads a "FETCH <id>\n" line, answers "reply <id>\n" D later and closes), the server process
// (found through $CWSGI_SERVE, the app through $CWSGI_BUILD_DIR/apps/upstream.so), and 256
// non-blocking clients on one poll loop. Every wait has a deadline, and alarm() bounds the whole.
#include "cmocka.hh"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// D, how long the upstream holds each call. The cooperative run's D is long enough that all
// 256 requests reach the upstream before the first one is answered even when the one loop
// thread starts them slowly (150-500 ms under sanitizers on a loaded 2-core machine), so the
// peak of 256 shows that they all wait at once. The threads run takes kClients / 4 x D, so its
// D is shorter.
constexpr int kCoopDelayMs = 1000;
constexpr int kThreadsDelayMs = 300;
constexpr int kClients = 256;       // concurrent GET /fetch
constexpr int kHealthAfterMs = 100; // when /health goes out, after the fetches
constexpr int kHealthBoundMs = 100; // ...and how soon it must be answered in cooperative mode
constexpr int kWindow = 8;          // fetches opened ahead of what the upstream has received

// The bound on the 256 fetches in cooperative mode. About D is expected (D + 100-150 ms here);
// under AddressSanitizer the one loop thread needs longer to start and finish 256 requests
// around the same D, so the bound is wider there. Either is far below the 256 x D that a
// blocking wait would take.
#if defined(__SANITIZE_ADDRESS__)
constexpr int kFetchBoundMs = 4 * kCoopDelayMs;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr int kFetchBoundMs = 4 * kCoopDelayMs;
#else
constexpr int kFetchBoundMs = 2 * kCoopDelayMs;
#endif
#else
constexpr int kFetchBoundMs = 2 * kCoopDelayMs;
#endif

// The running server, killed by main() or the alarm when a failed assertion skipped its destructor.
std::atomic<pid_t> g_server_pid{-1};

void kill_server()
{
    pid_t pid = g_server_pid.exchange(-1);
    if (pid > 0) ::kill(pid, SIGKILL);
}

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

/// An fd closed when it goes out of scope.
struct Fd {
    int fd = -1;
    Fd() = default;
    explicit Fd(int f) : fd(f) {}
    Fd(Fd &&o) noexcept : fd(o.fd) { o.fd = -1; }
    Fd &operator=(Fd &&o) noexcept
    {
        if (this != &o) {
            reset();
            fd = o.fd;
            o.fd = -1;
        }
        return *this;
    }
    ~Fd() { reset(); }
    void reset()
    {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
};

sockaddr_in loopback(int port)
{
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    return a;
}

// ---- the slow upstream ---------------------------------------------------------------------

/// A TCP service on 127.0.0.1 that answers each "FETCH <id>\n" with "reply <id>\n" `delay_ms`
/// after the line arrived, then closes. One thread, one epoll set, one timer queue (the delay
/// is constant, so the queue is in due order), so it holds any number of calls at once.
class SlowUpstream {
public:
    explicit SlowUpstream(int delay_ms) : delay_ms_(delay_ms)
    {
        listen_ = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        int one = 1;
        ::setsockopt(listen_.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a = loopback(0);
        socklen_t len = sizeof a;
        if (::bind(listen_.fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 || ::listen(listen_.fd, 1024) != 0 ||
            ::getsockname(listen_.fd, reinterpret_cast<sockaddr *>(&a), &len) != 0) {
            fail_msg("upstream: cannot listen: %s", strerror(errno));
        }
        port_ = ntohs(a.sin_port);
        ep_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
        stop_ = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        add(listen_.fd, EPOLLIN);
        add(stop_.fd, EPOLLIN);
        thread_ = std::thread([this] { loop(); });
    }
    ~SlowUpstream()
    {
        uint64_t one = 1;
        if (::write(stop_.fd, &one, sizeof one) < 0) std::abort();
        thread_.join();
    }
    int port() const { return port_; }
    /// Request lines received so far, calls answered so far, and the most calls held at once.
    int received() const { return received_.load(); }
    int answered() const { return answered_.load(); }
    int peak() const { return peak_.load(); }

private:
    struct Call {
        Fd fd;
        std::string line; // what arrived so far, up to the '\n'
        Clock::time_point due{};
    };

    void add(int fd, uint32_t events)
    {
        epoll_event ev{};
        ev.events = events;
        ev.data.fd = fd;
        ::epoll_ctl(ep_.fd, EPOLL_CTL_ADD, fd, &ev);
    }

    void loop()
    {
        std::map<int, Call> calls;
        std::deque<int> due; // fds whose line is complete, in due order
        epoll_event evs[64];
        for (;;) {
            int timeout = -1;
            if (!due.empty()) {
                auto left = std::chrono::duration_cast<milliseconds>(calls[due.front()].due - Clock::now()).count();
                timeout = static_cast<int>(std::max<long long>(0, left) + 1);
            }
            int n = ::epoll_wait(ep_.fd, evs, 64, timeout);
            for (int i = 0; i < n; ++i) {
                int fd = evs[i].data.fd;
                if (fd == stop_.fd) return;
                if (fd == listen_.fd) {
                    for (int c; (c = ::accept4(listen_.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
                        calls[c].fd = Fd(c);
                        add(c, EPOLLIN);
                        peak_.store(std::max(peak_.load(), static_cast<int>(calls.size())));
                    }
                    continue;
                }
                Call &call = calls[fd];
                char buf[256];
                ssize_t r = ::recv(fd, buf, sizeof buf, 0);
                if (r > 0) {
                    call.line.append(buf, static_cast<size_t>(r));
                    if (call.line.find('\n') != std::string::npos) {
                        ::epoll_ctl(ep_.fd, EPOLL_CTL_DEL, fd, nullptr); // nothing more to read
                        call.due = Clock::now() + milliseconds(delay_ms_);
                        due.push_back(fd);
                        received_++;
                    }
                } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    calls.erase(fd); // the caller gave up before its line was complete
                }
            }
            while (!due.empty() && calls[due.front()].due <= Clock::now()) {
                int fd = due.front();
                due.pop_front();
                const std::string &line = calls[fd].line;
                std::string reply = "reply " + line.substr(6, line.find('\n') - 6) + "\n";
                // A few bytes into an empty socket buffer: one send is enough.
                if (::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(reply.size())) {
                    answered_++;
                }
                calls.erase(fd);
            }
        }
    }

    Fd listen_, ep_, stop_;
    int port_ = 0;
    int delay_ms_;
    std::atomic<int> received_{0}, answered_{0}, peak_{0};
    std::thread thread_;
};

// ---- the server process ----------------------------------------------------------------------

/// cwsgi-serve in a child process, its stdout and stderr collected by a thread.
class Server {
public:
    Server(const std::vector<std::string> &args, const std::string &upstream)
    {
        const char *serve = std::getenv("CWSGI_SERVE");
        const char *dir = std::getenv("CWSGI_BUILD_DIR");
        if (serve == nullptr || dir == nullptr) {
            print_message("CWSGI_SERVE or CWSGI_BUILD_DIR is not set: run through ctest\n");
            skip();
        }
        std::vector<std::string> argv = {serve,         "--adapter",          "microhttpd", "--bind",
                                         "127.0.0.1:0", "--graceful-timeout", "5"};
        argv.insert(argv.end(), args.begin(), args.end());
        argv.push_back(std::string(dir) + "/apps/upstream.so");
        std::vector<char *> cargv;
        for (auto &a : argv) cargv.push_back(a.data());
        cargv.push_back(nullptr);
        // The environment is built before fork: the child of a threaded process calls only
        // async-signal-safe functions until it execs.
        std::vector<std::string> env = {"UPSTREAM=" + upstream};
        for (char **e = environ; *e != nullptr; ++e) {
            if (std::strncmp(*e, "UPSTREAM=", 9) != 0) env.emplace_back(*e);
        }
        std::vector<char *> cenv;
        for (auto &e : env) cenv.push_back(e.data());
        cenv.push_back(nullptr);
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) fail_msg("pipe: %s", strerror(errno));
        pid_ = ::fork();
        if (pid_ < 0) fail_msg("fork: %s", strerror(errno));
        if (pid_ == 0) {
            ::dup2(p[1], 1);
            ::dup2(p[1], 2);
            ::execve(cargv[0], cargv.data(), cenv.data());
            ::_exit(127);
        }
        g_server_pid = pid_;
        ::close(p[1]);
        out_fd_ = Fd(p[0]);
        reader_ = std::thread([this] { read_output(); });
        // The port from "Listening at: http://127.0.0.1:PORT (PID)".
        const std::string key = "Listening at: http://127.0.0.1:";
        auto t0 = Clock::now();
        while (port_ == 0 && ms_since(t0) < 10000) {
            std::string out = output();
            size_t at = out.find(key);
            if (at != std::string::npos && out.find(' ', at + key.size()) != std::string::npos) {
                port_ = std::atoi(out.c_str() + at + key.size());
            } else if (::waitpid(pid_, &status_, WNOHANG) == pid_) {
                pid_ = g_server_pid = -1;
                fail_msg("cwsgi-serve exited before listening: %s", out.c_str());
            }
            std::this_thread::sleep_for(milliseconds(10));
        }
        if (port_ == 0) fail_msg("cwsgi-serve did not listen within 10 s: %s", output().c_str());
    }
    ~Server()
    {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status_, 0);
            g_server_pid = -1;
        }
        if (reader_.joinable()) reader_.join();
    }
    int port() const { return port_; }
    std::string output() const
    {
        std::lock_guard<std::mutex> lk(mu_);
        return out_;
    }
    /// SIGTERM, then the exit status (-1 when it did not exit within timeout_ms: then SIGKILL).
    int stop(int timeout_ms)
    {
        ::kill(pid_, SIGTERM);
        auto t0 = Clock::now();
        while (ms_since(t0) < timeout_ms) {
            if (::waitpid(pid_, &status_, WNOHANG) == pid_) {
                pid_ = g_server_pid = -1;
                reader_.join();
                return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
            }
            std::this_thread::sleep_for(milliseconds(10));
        }
        return -1;
    }

private:
    void read_output()
    {
        char buf[4096];
        ssize_t n;
        while ((n = ::read(out_fd_.fd, buf, sizeof buf)) != 0) {
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return;
            std::lock_guard<std::mutex> lk(mu_);
            out_.append(buf, static_cast<size_t>(n));
        }
    }

    pid_t pid_ = -1;
    int status_ = 0;
    int port_ = 0;
    Fd out_fd_;
    mutable std::mutex mu_;
    std::string out_;
    std::thread reader_;
};

// ---- the clients -----------------------------------------------------------------------------

/// One HTTP/1.1 exchange with "Connection: close": the response is everything up to EOF.
struct Exchange {
    Fd fd;
    std::string request;
    size_t sent = 0;
    std::string response;
    bool done = false;
    double done_ms = -1; // since the run's start
};

Exchange open_exchange(int port, const char *target)
{
    Exchange ex;
    ex.fd = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (ex.fd.fd < 0) fail_msg("socket: %s", strerror(errno));
    sockaddr_in a = loopback(port);
    if (::connect(ex.fd.fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 && errno != EINPROGRESS) {
        fail_msg("connect: %s", strerror(errno));
    }
    ex.request = std::string("GET ") + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    return ex;
}

/// Moves every exchange's bytes until all are done or the deadline passes; false on timeout.
bool pump(std::vector<Exchange *> &all, Clock::time_point t0, double deadline_ms)
{
    std::vector<pollfd> pfds;
    std::vector<Exchange *> live;
    for (;;) {
        pfds.clear();
        live.clear();
        for (Exchange *ex : all) {
            if (ex->done) continue;
            pfds.push_back({ex->fd.fd, static_cast<short>(ex->sent < ex->request.size() ? POLLOUT : POLLIN), 0});
            live.push_back(ex);
        }
        if (live.empty()) return true;
        double left = deadline_ms - ms_since(t0);
        if (left <= 0) return false;
        int n = ::poll(pfds.data(), pfds.size(), static_cast<int>(left) + 1);
        if (n < 0 && errno != EINTR) fail_msg("poll: %s", strerror(errno));
        for (size_t i = 0; n > 0 && i < pfds.size(); ++i) {
            if (pfds[i].revents == 0) continue;
            Exchange &ex = *live[i];
            if (ex.sent < ex.request.size()) {
                ssize_t w = ::send(ex.fd.fd, ex.request.data() + ex.sent, ex.request.size() - ex.sent, MSG_NOSIGNAL);
                if (w > 0) ex.sent += static_cast<size_t>(w);
                if (w < 0 && errno != EAGAIN && errno != EINTR) fail_msg("send: %s", strerror(errno));
                continue;
            }
            char buf[4096];
            ssize_t r = ::recv(ex.fd.fd, buf, sizeof buf, 0);
            if (r > 0) {
                ex.response.append(buf, static_cast<size_t>(r));
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                ex.done = true;
                ex.done_ms = ms_since(t0);
            }
        }
    }
}

/// The status code of a response ("HTTP/1.1 200 OK..."), or 0.
int status_of(const std::string &resp)
{
    return resp.rfind("HTTP/1.", 0) == 0 && resp.size() > 12 ? std::atoi(resp.c_str() + 9) : 0;
}

std::string body_of(const std::string &resp)
{
    size_t at = resp.find("\r\n\r\n");
    return at == std::string::npos ? std::string() : resp.substr(at + 4);
}

struct RunResult {
    double fetch_ms;            // from the first request to the last complete response
    double health_ms;           // from sending /health to its complete response
    bool health_before_fetches; // /health was answered before any fetch
    int peak;                   // most upstream calls held at once
};

/// kClients GET /fetch at once, and GET /health kHealthAfterMs later (see below), against a server
/// started with `mode_args` that should hold `concurrency` upstream calls at once; every
/// response checked; the server stopped with SIGTERM and exit 0.
RunResult run_load(const std::vector<std::string> &mode_args, int delay_ms, int concurrency, double deadline_ms)
{
    // On the heap: a failed assertion longjmps past the destructors, and then both are leaked
    // whole (the upstream's thread keeps a valid object) rather than left on a reused stack.
    kill_server(); // one that a failed run left behind
    auto upstream_ptr = std::make_unique<SlowUpstream>(delay_ms);
    auto server_ptr = std::make_unique<Server>(mode_args, "127.0.0.1:" + std::to_string(upstream_ptr->port()));
    SlowUpstream &upstream = *upstream_ptr;
    Server &server = *server_ptr;

    std::vector<Exchange> fetches;
    fetches.reserve(kClients);
    std::vector<Exchange *> all;
    Exchange health;
    double health_sent = -1;
    auto t0 = Clock::now();
    // The fetches are opened at the pace the server takes them: at most kWindow more than the
    // upstream has received. 256 connects at once would test the kernel's accept queue instead
    // of the server (a machine with a small net.core.somaxconn drops the SYNs past it, and a
    // client retries a second later), while the upstream's peak still shows how many calls wait
    // at the same time. /health goes out kHealthAfterMs after the start, or once `concurrency`
    // calls wait in the upstream if that is later: one loop thread needs time to start 256
    // requests (about 100 ms here, 150-300 ms under sanitizers), and /health is to show that the
    // loop is free while they wait, not how long starting them takes.
    while (ms_since(t0) < deadline_ms) {
        while (fetches.size() < static_cast<size_t>(kClients) &&
               fetches.size() < static_cast<size_t>(upstream.received() + kWindow)) {
            fetches.push_back(open_exchange(server.port(), "/fetch"));
            all.push_back(&fetches.back());
        }
        if (health_sent < 0 && ms_since(t0) >= kHealthAfterMs && upstream.received() >= concurrency) {
            health = open_exchange(server.port(), "/health");
            health_sent = ms_since(t0);
            all.push_back(&health);
        }
        if (health_sent >= 0 && fetches.size() == static_cast<size_t>(kClients)) break;
        if (pump(all, t0, ms_since(t0) + 2)) {
            // Every exchange opened so far ended while the upstream still waits for calls: the
            // server refused, reset or answered without calling it.
            std::string why;
            for (const Exchange &ex : fetches) {
                if (status_of(ex.response) != 200) {
                    why = ex.response.empty() ? std::string("closed with no response") : ex.response;
                    break;
                }
            }
            fail_msg("%zu fetches ended with %d calls in the upstream (first bad: %s); server output: %s",
                     fetches.size(), upstream.received(), why.c_str(), server.output().c_str());
        }
    }
    if (health_sent < 0) {
        fail_msg("after %.0f ms, %zu fetches open, the upstream received %d of %d; server output: %s", deadline_ms,
                 fetches.size(), upstream.received(), concurrency, server.output().c_str());
    }
    if (!pump(all, t0, deadline_ms)) {
        int unfinished = 0;
        for (Exchange *ex : all) unfinished += ex->done ? 0 : 1;
        fail_msg("%d of %d exchanges unfinished after %.0f ms; server output: %s", unfinished,
                 static_cast<int>(all.size()), deadline_ms, server.output().c_str());
    }

    RunResult res{};
    res.health_ms = health.done_ms - health_sent;
    res.peak = upstream.peak();
    int ok = 0;
    double first_fetch_ms = deadline_ms;
    const Exchange *bad = nullptr;
    std::map<std::string, int> ids; // each request gets its own reply
    for (Exchange &ex : fetches) {
        res.fetch_ms = std::max(res.fetch_ms, ex.done_ms);
        first_fetch_ms = std::min(first_fetch_ms, ex.done_ms);
        if (status_of(ex.response) == 200 && body_of(ex.response).rfind("reply ", 0) == 0) {
            ok++;
            ids[body_of(ex.response)]++;
        } else if (bad == nullptr) {
            bad = &ex;
        }
    }
    // The figures first, so that a failure below still shows them.
    print_message("  %d x GET /fetch: %d answered 200 in %.0f ms (D = %d ms), upstream held %d at once; "
                  "GET /health sent at %.0f ms (%d calls waiting), answered in %.1f ms\n",
                  kClients, ok, res.fetch_ms, delay_ms, res.peak, health_sent, concurrency, res.health_ms);
    res.health_before_fetches = health.done_ms < first_fetch_ms;
    if (bad != nullptr) {
        fail_msg("GET /fetch answered '%s' after %.0f ms; server output: %s", bad->response.c_str(), bad->done_ms,
                 server.output().c_str());
    }
    assert_int_equal(ids.size(), kClients);
    assert_int_equal(status_of(health.response), 200);
    assert_string_equal(body_of(health.response).c_str(), "ok\n");
    assert_int_equal(upstream.answered(), kClients);

    int rc = server.stop(10000);
    if (rc != 0) fail_msg("cwsgi-serve exit status %d after SIGTERM; output: %s", rc, server.output().c_str());
    return res;
}

/// net.core.somaxconn, the cap on every listen backlog, printed because it shapes the connect phase.
std::string read_somaxconn()
{
    char buf[32] = "?";
    if (FILE *f = std::fopen("/proc/sys/net/core/somaxconn", "r")) {
        if (std::fgets(buf, sizeof buf, f) == nullptr) std::strcpy(buf, "?");
        std::fclose(f);
    }
    buf[std::strcspn(buf, "\n")] = '\0';
    return buf;
}

/// Room for kClients client sockets, as many upstream sockets and the server's own, in this
/// process and in the server, which inherits the limit.
void raise_fd_limit()
{
    rlimit rl{};
    const rlim_t want = 4 * kClients + 256;
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want) return;
    rl.rlim_cur = std::min(want, rl.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want)
        print_message("RLIMIT_NOFILE is %ld, below %ld: the test may fail\n", static_cast<long>(rl.rlim_cur),
                      static_cast<long>(want));
}

// ---- tests -----------------------------------------------------------------------------------

void test_upstream__cooperative_one_loop_thread(void **) // rule: THR-5, THR-6
{
    print_message("cooperative mode (-k gevent), one event-loop thread (net.core.somaxconn %s):\n",
                  read_somaxconn().c_str());
    RunResult r = run_load({"-k", "gevent", "--loop-threads", "1"}, kCoopDelayMs, kClients, 10 * kCoopDelayMs);
    // About one D: every call waits in the upstream at the same time. A blocking wait_fd
    // would serialise them on the one loop thread: kClients x D.
    assert_true(r.fetch_ms >= kCoopDelayMs);
    assert_true(r.fetch_ms < kFetchBoundMs);
    assert_int_equal(r.peak, kClients);
    // The loop is free while all of them wait: /health does not queue behind them.
    assert_true(r.health_ms < kHealthBoundMs);
    assert_true(r.health_before_fetches);
}

void test_upstream__threads(void **) // rule: THR-6
{
    constexpr int kThreads = 4;
    print_message("threads mode (-k gthread), %d app threads:\n", kThreads);
    RunResult r = run_load({"-k", "gthread", "--threads", std::to_string(kThreads)}, kThreadsDelayMs, kThreads,
                           3.0 * kClients / kThreads * kThreadsDelayMs);
    // Each pool thread holds one call at a time (wait_fd polls on it): kClients / kThreads x D.
    assert_true(r.fetch_ms >= 0.8 * kClients / kThreads * kThreadsDelayMs);
    assert_true(r.peak <= kThreads);
}

void on_alarm(int)
{
    kill_server();
    static const char msg[] = "test_upstream: over its time limit\n";
    ssize_t n = ::write(2, msg, sizeof msg - 1);
    (void)n;
    ::_exit(1);
}

} // namespace

int main(void)
{
    ::signal(SIGALRM, on_alarm);
    ::alarm(100); // the whole file, whatever hangs; ctest's timeout is above it
    ::signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upstream__cooperative_one_loop_thread),
        cmocka_unit_test(test_upstream__threads),
    };
    int failed = cmocka_run_group_tests(tests, nullptr, nullptr);
    kill_server(); // a failed assertion left it running
    return failed;
}
