// http_client.hh: a small raw HTTP/1.x client and a cwsgi-serve runner for end-to-end tests.
//
// Header-only, for tests that start a real server and talk to it over loopback: ServeProcess
// starts `cwsgi-serve ... --bind 127.0.0.1:0` in a process group of its own, learns the port
// from its "Listening at:" line and kills the whole group at the end; Client sends exact bytes
// and reads responses (status, headers in order, Content-Length, chunked and close-delimited
// bodies, 1xx skipped), every read bounded by a timeout; raw_exchange() sends raw bytes on a new
// connection and returns whatever comes back, unparsed. The same few functions existed in
// several test files before (tests/arbiter, adapters/h2o, adapters/microhttpd); they all use
// this one now. Threads: one Client per thread; ServeProcess is used by one thread.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

extern char **environ;

namespace cwsgi::testing {

using Clock = std::chrono::steady_clock;

/// Milliseconds since `t0`.
inline double ms_since(Clock::time_point t0)
{
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

/// The whole file at `path` ("" when it cannot be read).
inline std::string slurp(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

/// `rel` under the build tree: $CWSGI_BUILD_DIR/`rel` ("./`rel`" when it is unset).
inline std::string build_path(const std::string &rel)
{
    const char *dir = std::getenv("CWSGI_BUILD_DIR");
    return std::string(dir ? dir : ".") + "/" + rel;
}

/// The cwsgi-serve to test: $CWSGI_SERVE (both builds set it), else build_path(`fallback`).
inline std::string serve_binary(const std::string &fallback)
{
    const char *serve = std::getenv("CWSGI_SERVE");
    return serve ? serve : build_path(fallback);
}

/// A TCP connection to 127.0.0.1:`port` (blocking, TCP_NODELAY), or -1.
inline int connect_loopback(int port)
{
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/// One parsed response. status 0: no whole head came (error says why); complete: the body did
/// too (read_whole() and get() also give status 0 when it did not).
struct Response {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    bool complete = false; // the body ended as its framing says
    std::string error;     // "timeout", "closed", "reset", "malformed"

    /// The first value of header `name` (case-insensitive), or "".
    std::string header(std::string_view name) const
    {
        for (const auto &h : headers) {
            if (h.first.size() != name.size()) continue;
            bool same = true;
            for (size_t i = 0; i < name.size() && same; ++i) {
                same = std::tolower(static_cast<unsigned char>(h.first[i])) ==
                       std::tolower(static_cast<unsigned char>(name[i]));
            }
            if (same) return h.second;
        }
        return "";
    }
};

/// A raw HTTP/1.x client on one connection. Bytes read past a response are kept for the next
/// one (pipelining).
class Client {
public:
    /// Connects to 127.0.0.1:`port`; ok() says whether it did.
    explicit Client(int port) : fd_(connect_loopback(port)) {}
    /// Closes the connection (a FIN).
    ~Client() { close(); }
    Client(const Client &) = delete;
    Client &operator=(const Client &) = delete;

    /// True while connected (connect worked and close()/reset() did not come).
    bool ok() const { return fd_ >= 0; }
    /// The socket, or -1.
    int fd() const { return fd_; }
    /// Closes with a FIN; ok() is false after it.
    void close()
    {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    /// Closes with an RST (SO_LINGER 0) instead of a FIN.
    void reset()
    {
        if (fd_ < 0) return;
        linger l{1, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        close();
    }
    /// Half-closes: the server reads EOF, this side still reads.
    void shutdown_write()
    {
        if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
    }

    /// Sends all of `bytes`; false when the connection failed.
    bool send(std::string_view bytes)
    {
        while (!bytes.empty() && fd_ >= 0) {
            ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            bytes.remove_prefix(static_cast<size_t>(n));
        }
        return fd_ >= 0;
    }

    /// Reads one final response (1xx skipped, counted in informational()) within `timeout_ms`.
    /// `head_request`: the response has no body whatever its headers say.
    Response read_response(int timeout_ms = 5000, bool head_request = false)
    {
        Response r;
        auto t0 = Clock::now();
        for (;;) {
            size_t end;
            while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
                if (!fill(t0, timeout_ms, r)) return r;
            }
            std::string head = buf_.substr(0, end);
            buf_.erase(0, end + 4);
            if (!parse_head(head, r)) return r;
            if (r.status >= 100 && r.status < 200) {
                ++informational_;
                r = Response{};
                continue;
            }
            break;
        }
        const std::string te = r.header("Transfer-Encoding");
        const std::string cl = r.header("Content-Length");
        if (head_request || r.status == 204 || r.status == 304) {
            r.complete = true;
        } else if (te.find("chunked") != std::string::npos) {
            read_chunked(t0, timeout_ms, r);
        } else if (!cl.empty()) {
            size_t want = std::strtoull(cl.c_str(), nullptr, 10);
            while (buf_.size() < want) {
                if (!fill(t0, timeout_ms, r)) return r;
            }
            r.body = buf_.substr(0, want);
            buf_.erase(0, want);
            r.complete = true;
        } else {
            Response tmp;
            while (fill(t0, timeout_ms, tmp)) {
            }
            r.body = std::move(buf_);
            buf_.clear();
            r.complete = tmp.error == "closed";
        }
        return r;
    }

    /// True when the server closes the connection (EOF or reset) within `timeout_ms`; bytes
    /// that arrive meanwhile are dropped.
    bool wait_closed(int timeout_ms)
    {
        auto t0 = Clock::now();
        Response tmp;
        while (fill(t0, timeout_ms, tmp)) buf_.clear();
        return tmp.error == "closed" || tmp.error == "reset";
    }

    /// Sends get(`target`); false when the connection failed.
    bool send_get(const std::string &target);

    /// read_response(`timeout_ms`) for tests that ask "did a whole answer come": status is 0
    /// unless the response came complete (closed, cut, timed out or malformed all give 0).
    Response read_whole(int timeout_ms)
    {
        Response r = read_response(timeout_ms);
        if (!r.complete) r.status = 0;
        return r;
    }

    /// send_get(`target`), then read_whole(`timeout_ms`); status 0 when the send failed.
    Response get(const std::string &target, int timeout_ms = 5000)
    {
        if (!send_get(target)) return Response{};
        return read_whole(timeout_ms);
    }

    /// How many 1xx responses read_response() skipped on this connection.
    int informational() const { return informational_; }

private:
    // Reads more into buf_ before the deadline; false (with r.error) at EOF, error or timeout.
    bool fill(Clock::time_point t0, int timeout_ms, Response &r)
    {
        if (fd_ < 0) {
            r.error = "closed";
            return false;
        }
        int left = timeout_ms - static_cast<int>(ms_since(t0));
        if (left <= 0) {
            r.error = "timeout";
            return false;
        }
        pollfd p{fd_, POLLIN, 0};
        int pr = ::poll(&p, 1, left);
        if (pr == 0) {
            r.error = "timeout";
            return false;
        }
        if (pr < 0) {
            r.error = errno == EINTR ? "timeout" : "reset";
            return errno == EINTR;
        }
        char tmp[65536];
        ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
        if (n > 0) {
            buf_.append(tmp, static_cast<size_t>(n));
            return true;
        }
        if (n < 0 && errno == EINTR) return true;
        r.error = n == 0 ? "closed" : "reset";
        return false;
    }

    static bool parse_head(const std::string &head, Response &r)
    {
        size_t eol = head.find("\r\n");
        std::string line = head.substr(0, eol);
        if (line.rfind("HTTP/1.", 0) != 0 || line.size() < 12) {
            r.error = "malformed";
            return false;
        }
        r.status = std::atoi(line.c_str() + 9);
        size_t pos = eol == std::string::npos ? head.size() : eol + 2;
        while (pos < head.size()) {
            size_t e = head.find("\r\n", pos);
            if (e == std::string::npos) e = head.size();
            std::string f = head.substr(pos, e - pos);
            size_t colon = f.find(':');
            if (colon != std::string::npos) {
                size_t v = colon + 1;
                while (v < f.size() && (f[v] == ' ' || f[v] == '\t')) ++v;
                r.headers.emplace_back(f.substr(0, colon), f.substr(v));
            }
            pos = e + 2;
        }
        return true;
    }

    void read_chunked(Clock::time_point t0, int timeout_ms, Response &r)
    {
        for (;;) {
            size_t eol;
            while ((eol = buf_.find("\r\n")) == std::string::npos) {
                if (!fill(t0, timeout_ms, r)) return;
            }
            size_t size = std::strtoull(buf_.c_str(), nullptr, 16);
            buf_.erase(0, eol + 2);
            if (size == 0) {
                // Trailers, then the empty line.
                while ((eol = buf_.find("\r\n")) != 0) {
                    if (eol == std::string::npos) {
                        if (!fill(t0, timeout_ms, r)) return;
                        continue;
                    }
                    buf_.erase(0, eol + 2);
                }
                buf_.erase(0, 2);
                r.complete = true;
                return;
            }
            while (buf_.size() < size + 2) {
                if (!fill(t0, timeout_ms, r)) return;
            }
            r.body.append(buf_, 0, size);
            buf_.erase(0, size + 2);
        }
    }

    int fd_ = -1;
    std::string buf_;
    int informational_ = 0;
};

/// "GET `target` HTTP/1.1" with a Host header and `extra` header lines (each ending in CRLF).
inline std::string get(const std::string &target, const std::string &extra = "")
{
    return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + "\r\n";
}

inline bool Client::send_get(const std::string &target) { return send(testing::get(target)); }

/// Sends `raw` on a new connection to 127.0.0.1:`port` and returns every byte that comes back
/// within `ms` or until the server closes, unparsed. Once a head other than a "HTTP/1.1 100"
/// has come, it waits at most 200 ms more for the rest (one final response is enough for the
/// tests that use it). "<connect failed>" when the connection could not be made.
inline std::string raw_exchange(int port, std::string_view raw, int ms = 1500)
{
    int fd = connect_loopback(port);
    if (fd < 0) return "<connect failed>";
    ::send(fd, raw.data(), raw.size(), MSG_NOSIGNAL);
    std::string out;
    auto deadline = Clock::now() + std::chrono::milliseconds(ms);
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) break;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
        char buf[4096];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
        if (out.find("\r\n\r\n") != std::string::npos && out.find("HTTP/1.1 100") != 0) {
            deadline = std::min(deadline, Clock::now() + std::chrono::milliseconds(200));
        }
    }
    ::close(fd);
    return out;
}

/// How many times `needle` occurs in `text` (overlapping occurrences counted).
inline size_t count_of(const std::string &text, const std::string &needle)
{
    size_t n = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
}

/// The pids of `pid`'s children (Linux's /proc/PID/task/PID/children).
inline std::vector<pid_t> children_of(pid_t pid)
{
    std::vector<pid_t> out;
    std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    long p;
    while (in >> p) out.push_back(static_cast<pid_t>(p));
    return out;
}

/// How a ServeProcess starts the server; the defaults are the plain case.
struct ServeOptions {
    /// How long to wait for "Listening at:"; 0: do not wait (port() stays 0), for a server
    /// expected to fail at start.
    int start_timeout_ms = 15000;
    /// Add "--bind 127.0.0.1:0" before the app (off when the socket comes another way).
    bool bind = true;
    /// With a path: "--error-logfile PATH" is added before the app, and wait_for() and text()
    /// search that file after the output.
    std::string log_path;
    /// "NAME=value" entries for the server's environment, each replacing a variable of that name.
    std::vector<std::string> env;
    /// The server gets RLIMIT_CORE 0 (crashing workers leave no core files).
    bool no_core = false;
    /// >= 0: that listening socket is passed as systemd does (descriptor 3, LISTEN_FDS=1,
    /// LISTEN_PID=the server's pid); set bind to false with it.
    int systemd_fd = -1;
};

/// A cwsgi-serve process (the master and its workers) for one test.
class ServeProcess {
public:
    /// Starts `serve_bin` with `args` (the app last) plus "--bind 127.0.0.1:0", and waits up to
    /// 15 s for "Listening at:" (port() stays 0 when it never came).
    ServeProcess(const std::string &serve_bin, std::vector<std::string> args)
        : ServeProcess(serve_bin, std::move(args), ServeOptions{})
    {
    }

    /// Starts `serve_bin` with `args` (the app last) as `opt` says, and waits up to
    /// opt.start_timeout_ms for "Listening at:" in text() (port() stays 0 when it never came).
    ServeProcess(const std::string &serve_bin, std::vector<std::string> args, ServeOptions opt)
        : log_path_(opt.log_path)
    {
        args.insert(args.begin(), serve_bin);
        if (opt.bind) args.insert(args.end() - 1, {"--bind", "127.0.0.1:0"});
        if (!log_path_.empty()) args.insert(args.end() - 1, {"--error-logfile", log_path_});
        std::vector<char *> argv;
        for (auto &a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        std::vector<std::string> envs;
        for (char **e = environ; *e; ++e) {
            bool replaced = false;
            for (const auto &n : opt.env) {
                size_t eq = n.find('=');
                if (eq != std::string::npos && std::strncmp(*e, n.c_str(), eq + 1) == 0) replaced = true;
            }
            if (!replaced) envs.push_back(*e);
        }
        envs.insert(envs.end(), opt.env.begin(), opt.env.end());
        std::vector<char *> envp; // built before fork: the child only calls async-signal-safe functions
        for (auto &e : envs) envp.push_back(e.data());
        envp.push_back(nullptr);
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) return;
        pid_ = ::fork();
        if (pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL); // never outlive a test killed by its timeout
            if (opt.no_core) {
                struct rlimit no_core = {0, 0};
                ::setrlimit(RLIMIT_CORE, &no_core);
            }
            ::setpgid(0, 0); // a group of its own: killed whole at the end
            ::dup2(fds[1], 1);
            ::dup2(fds[1], 2);
            if (opt.systemd_fd >= 0) {
                // The copy that dup2 makes is not close-on-exec; the same fd needs it cleared.
                if (opt.systemd_fd == 3) {
                    ::fcntl(3, F_SETFD, 0);
                } else {
                    ::dup2(opt.systemd_fd, 3);
                }
                char pid_env[32];
                ::snprintf(pid_env, sizeof pid_env, "LISTEN_PID=%ld", static_cast<long>(::getpid()));
                envp.insert(envp.end() - 1, pid_env);
                static char fds_env[] = "LISTEN_FDS=1";
                envp.insert(envp.end() - 1, fds_env);
            }
            ::execve(argv[0], argv.data(), envp.data());
            ::dprintf(2, "exec %s: %s\n", argv[0], std::strerror(errno));
            ::_exit(127);
        }
        ::close(fds[1]);
        out_fd_ = fds[0];
        reader_ = std::thread([this] { read_output(); });
        if (opt.start_timeout_ms <= 0) return;
        const std::string mark = "Listening at: http://127.0.0.1:";
        if (wait_for(mark, opt.start_timeout_ms)) {
            std::string all = text();
            port_ = std::atoi(all.c_str() + all.find(mark) + mark.size());
        }
        if (port_ == 0) std::fprintf(stderr, "cwsgi-serve did not start; output:\n%s\n", text().c_str());
    }
    /// SIGKILLs the process group (the master and its workers) and the also_kill() ones, and
    /// reaps the master.
    ~ServeProcess()
    {
        if (pid_ > 0) {
            ::kill(-pid_, SIGKILL);
            if (!exited_) {
                int st;
                ::waitpid(pid_, &st, 0);
            }
        }
        for (pid_t p : extra_) ::kill(p, SIGKILL);
        if (reader_.joinable()) reader_.join();
        if (out_fd_ >= 0) ::close(out_fd_);
    }
    ServeProcess(const ServeProcess &) = delete;
    ServeProcess &operator=(const ServeProcess &) = delete;

    /// The port from "Listening at:", or 0.
    int port() const { return port_; }
    /// The master's pid (also its process group), or -1 when fork failed.
    pid_t pid() const { return pid_; }
    /// Sends `sig` to the master (not its group).
    void signal(int sig) const { ::kill(pid_, sig); }
    /// Another process to SIGKILL at the end (e.g. a re-executed master).
    void also_kill(pid_t p) { extra_.push_back(p); }

    /// Everything the server wrote to stdout and stderr so far.
    std::string output()
    {
        std::lock_guard<std::mutex> lk(mu_);
        return out_;
    }
    /// The error log file ("" without ServeOptions::log_path, or when it cannot be read).
    std::string log() const { return log_path_.empty() ? "" : slurp(log_path_); }
    /// output() then log(), for searching.
    std::string text() { return output() + log(); }
    /// Waits up to `timeout_ms` for `count` occurrences of `needle` in text().
    bool wait_for(const std::string &needle, int timeout_ms, size_t count = 1)
    {
        auto t0 = Clock::now();
        while (count_of(text(), needle) < count) {
            if (ms_since(t0) > timeout_ms) return false;
            ::usleep(5000);
        }
        return true;
    }
    /// Waits up to `timeout_ms` until the master has exactly `n` children.
    bool wait_workers(size_t n, int timeout_ms)
    {
        auto t0 = Clock::now();
        while (children_of(pid_).size() != n) {
            if (ms_since(t0) > timeout_ms) return false;
            ::usleep(5000);
        }
        return true;
    }
    /// Waits up to `timeout_ms` for the master to exit; its waitpid status, or -1.
    int wait_exit(int timeout_ms)
    {
        auto t0 = Clock::now();
        int st = 0;
        while (::waitpid(pid_, &st, WNOHANG) == 0) {
            if (ms_since(t0) > timeout_ms) return -1;
            ::usleep(5000);
        }
        exited_ = true;
        return st;
    }

private:
    void read_output()
    {
        char buf[4096];
        ssize_t n;
        while ((n = ::read(out_fd_, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
            if (n > 0) {
                std::lock_guard<std::mutex> lk(mu_);
                out_.append(buf, static_cast<size_t>(n));
            }
        }
    }

    std::string log_path_;
    pid_t pid_ = -1;
    bool exited_ = false;
    int out_fd_ = -1;
    int port_ = 0;
    std::vector<pid_t> extra_;
    std::thread reader_;
    std::mutex mu_;
    std::string out_;
};

} // namespace cwsgi::testing
