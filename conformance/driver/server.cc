// server.cc: starting, watching and stopping a server process (see server.hh).
#include "server.hh"

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>

#include "rawhttp.hh"

namespace conf {

using clock = std::chrono::steady_clock;

static constexpr size_t kMaxOutput = size_t(4) << 20;

// The pids of running servers this driver started, for kill_all_servers().
static std::mutex g_pids_mu;
static std::vector<pid_t> g_pids;

static void track_pid(pid_t pid, bool add)
{
    std::lock_guard<std::mutex> lk(g_pids_mu);
    if (add) {
        g_pids.push_back(pid);
    } else {
        g_pids.erase(std::remove(g_pids.begin(), g_pids.end(), pid), g_pids.end());
    }
}

// The remove_on_exit files of servers not yet destroyed, for kill_all_servers().
static std::vector<std::string> g_files;

void kill_all_servers()
{
    std::lock_guard<std::mutex> lk(g_pids_mu);
    for (pid_t p : g_pids) ::kill(p, SIGKILL);
    for (const std::string &f : g_files) ::unlink(f.c_str());
}

std::string make_shared_file()
{
    const char *dir = std::getenv("TMPDIR");
    std::string path = std::string(dir && *dir ? dir : "/tmp") + "/cwsgi-probe-XXXXXX";
    int fd = ::mkstemp(path.data());
    if (fd < 0) return "";
    ::close(fd);
    return path;
}

void ServerProc::remove_on_exit(const std::string &path)
{
    files_.push_back(path);
    std::lock_guard<std::mutex> lk(g_pids_mu);
    g_files.push_back(path);
}

int pick_free_port()
{
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    int port = -1;
    if (::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) == 0) {
        port = ntohs(a.sin_port);
    }
    ::close(fd);
    return port;
}

static long rss_of(pid_t pid)
{
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("VmRSS:", 0) == 0) {
            return std::strtol(line.c_str() + 6, nullptr, 10);
        }
    }
    return -1;
}

static void children_of(pid_t pid, std::vector<pid_t> &out, int depth)
{
    if (depth > 8 || out.size() > 1024) return;
    std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    pid_t c;
    while (f >> c) {
        out.push_back(c);
        children_of(c, out, depth + 1);
    }
}

long rss_tree_kib(pid_t pid)
{
    long total = rss_of(pid);
    if (total < 0) return -1;
    std::vector<pid_t> kids;
    children_of(pid, kids, 0);
    for (pid_t k : kids) {
        long r = rss_of(k);
        if (r > 0) total += r;
    }
    return total;
}

/// The port of the first "Listening at: http://127.0.0.1:PORT" (or [::1], localhost) line, or 0.
static int listening_port(const std::string &out)
{
    static const char *const prefixes[] = {
        "Listening at: http://127.0.0.1:",  "Listening at: http://[::1]:",  "Listening at: http://localhost:",
        "Listening at: https://127.0.0.1:", "Listening at: https://[::1]:", "Listening at: https://localhost:"};
    for (const char *p : prefixes) {
        size_t at = out.find(p);
        if (at == std::string::npos) continue;
        at += strlen(p);
        int port = 0;
        size_t digits = 0;
        while (at + digits < out.size() && std::isdigit(static_cast<unsigned char>(out[at + digits])) && digits < 6) {
            port = port * 10 + (out[at + digits] - '0');
            digits++;
        }
        // Only a complete number: the line must go on after it.
        if (digits > 0 && at + digits < out.size()) return port;
    }
    return 0;
}

std::unique_ptr<ServerProc> ServerProc::start(const std::vector<std::string> &argv, int port_hint, int timeout_ms,
                                              std::string *err, const std::vector<std::string> &env)
{
    if (argv.empty()) {
        if (err) *err = "empty command";
        return nullptr;
    }
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        if (err) *err = std::string("pipe: ") + strerror(errno);
        return nullptr;
    }
    std::vector<char *> args;
    for (const auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    // The child's environment is built here: after fork() a threaded process may only call
    // async-signal-safe functions, and setenv() is not one.
    std::vector<std::string> envs;
    for (char **e = environ; *e != nullptr; ++e) {
        std::string kv = *e;
        std::string key = kv.substr(0, kv.find('='));
        bool overridden = std::any_of(
            env.begin(), env.end(), [&](const std::string &x) { return x.compare(0, key.size() + 1, key + "=") == 0; });
        if (!overridden) envs.push_back(std::move(kv));
    }
    envs.insert(envs.end(), env.begin(), env.end());
    std::vector<char *> envp;
    for (auto &e : envs) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = fork();
    if (pid < 0) {
        if (err) *err = std::string("fork: ") + strerror(errno);
        ::close(pipefd[0]);
        ::close(pipefd[1]);
        return nullptr;
    }
    if (pid == 0) {
        dup2(pipefd[1], 1);
        dup2(pipefd[1], 2);
        int devnull = ::open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        execvpe(args[0], args.data(), envp.data());
        dprintf(2, "exec %s: %s\n", args[0], strerror(errno));
        _exit(127);
    }
    ::close(pipefd[1]);
    track_pid(pid, true);
    std::unique_ptr<ServerProc> sp(new ServerProc());
    sp->pid_ = pid;
    sp->out_fd_ = pipefd[0];
    sp->argv_ = argv;
    sp->reader_ = std::thread([p = sp.get()] { p->reader_loop(); });

    auto t0 = clock::now();
    auto elapsed = [&] {
        return static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t0).count());
    };
    if (port_hint == 0) {
        std::unique_lock<std::mutex> lk(sp->mu_);
        for (;;) {
            if (int port = listening_port(sp->out_); port > 0) {
                sp->port_ = port;
                break;
            }
            if (sp->out_closed_ || elapsed() > timeout_ms) {
                std::string o = sp->out_;
                lk.unlock();
                if (err) {
                    *err = "no 'Listening at: http(s)://127.0.0.1:PORT' line within " + std::to_string(timeout_ms) +
                           " ms; output: " + escape_bytes(o, 600);
                }
                return nullptr;
            }
            sp->cv_.wait_for(lk, std::chrono::milliseconds(50));
        }
        return sp;
    }
    sp->port_ = port_hint;
    while (elapsed() < timeout_ms) {
        std::string e;
        if (Conn::open("127.0.0.1", port_hint, 500, &e)) return sp;
        {
            std::lock_guard<std::mutex> lk(sp->mu_);
            if (sp->out_closed_) break;
        }
        usleep(50 * 1000);
    }
    if (err) *err = "port " + std::to_string(port_hint) + " never accepted; output: " + escape_bytes(sp->output(), 600);
    return nullptr;
}

void ServerProc::reader_loop()
{
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(out_fd_, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        std::lock_guard<std::mutex> lk(mu_);
        if (n <= 0) {
            out_closed_ = true;
            cv_.notify_all();
            return;
        }
        out_.append(buf, static_cast<size_t>(n));
        if (out_.size() > kMaxOutput) out_.erase(0, out_.size() - kMaxOutput / 2);
        cv_.notify_all();
    }
}

std::string ServerProc::command() const
{
    std::string s;
    for (const auto &a : argv_) {
        if (!s.empty()) s += ' ';
        s += a;
    }
    return s;
}

std::string ServerProc::output() const
{
    std::lock_guard<std::mutex> lk(mu_);
    return out_;
}

bool ServerProc::wait_output(const std::string &needle, int timeout_ms) const
{
    std::unique_lock<std::mutex> lk(mu_);
    auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms);
    while (out_.find(needle) == std::string::npos) {
        if (out_closed_ || cv_.wait_until(lk, deadline) == std::cv_status::timeout) {
            return out_.find(needle) != std::string::npos;
        }
    }
    return true;
}

void ServerProc::signal(int sig) const
{
    if (pid_ > 0 && !exited_) ::kill(pid_, sig);
}

std::optional<int> ServerProc::wait_exit(int timeout_ms)
{
    if (exited_) return wait_status_;
    auto t0 = clock::now();
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
            exited_ = true;
            wait_status_ = st;
            track_pid(pid_, false);
            // What it wrote last may still be in the pipe: the master's exit can be seen before
            // the reader took its workers' final lines. Wait (bounded: a descendant that
            // outlives the master keeps the pipe open) until the reader reaches the end.
            std::unique_lock<std::mutex> lk(mu_);
            cv_.wait_for(lk, std::chrono::seconds(2), [this] { return out_closed_; });
            return st;
        }
        if (r < 0 && errno != EINTR) {
            exited_ = true;
            track_pid(pid_, false);
            return std::nullopt;
        }
        if (std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t0).count() > timeout_ms) {
            return std::nullopt;
        }
        usleep(20 * 1000);
    }
}

long ServerProc::rss_kib() const
{
    if (exited_) return -1;
    return rss_tree_kib(pid_);
}

ServerProc::~ServerProc()
{
    if (!exited_) {
        ::kill(pid_, SIGTERM);
        if (!wait_exit(10000)) {
            ::kill(pid_, SIGKILL);
            wait_exit(5000);
        }
    }
    if (reader_.joinable()) reader_.join();
    if (out_fd_ >= 0) ::close(out_fd_);
    std::lock_guard<std::mutex> lk(g_pids_mu);
    for (const std::string &f : files_) {
        ::unlink(f.c_str());
        g_files.erase(std::remove(g_files.begin(), g_files.end(), f), g_files.end());
    }
}

} // namespace conf
