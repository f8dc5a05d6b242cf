// system.cc: signals queue, process titles, sd_notify, pid file, privileges (see system.hh).
#include "system.hh"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace cwsgi::arbiter {

namespace {

int g_signal_pipe = -1;

void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = static_cast<unsigned char>(sig);
    ssize_t n = ::write(g_signal_pipe, &b, 1); // a full pipe drops the signal: it is queued many times over
    (void)n;
    errno = saved;
}

char *g_title_area = nullptr; // the original argv strings, contiguous
size_t g_title_size = 0;

} // namespace

SignalQueue::~SignalQueue() { close_and_restore(); }

bool SignalQueue::open(const std::vector<int> &signals, std::string &error)
{
    if (::pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0) {
        error = fmt::format("cannot create the signal pipe: {}", std::strerror(errno));
        return false;
    }
    g_signal_pipe = fds_[1];
    signals_ = signals;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int s : signals) ::sigaction(s, &sa, nullptr);
    return true;
}

int SignalQueue::next(int timeout_ms)
{
    pollfd p{fds_[0], POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return 0; // EINTR counts as "nothing yet"
    unsigned char b = 0;
    return ::read(fds_[0], &b, 1) == 1 ? b : 0;
}

void SignalQueue::close_and_restore()
{
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int s : signals_) ::sigaction(s, &dfl, nullptr);
    signals_.clear();
    for (int &fd : fds_) {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
    g_signal_pipe = -1;
}

std::string signal_name(int sig)
{
    const char *abbrev = ::sigabbrev_np(sig);
    return abbrev ? fmt::format("SIG{}", abbrev) : fmt::format("signal {}", sig);
}

std::vector<std::string> init_process_title()
{
    std::vector<std::string> args;
    std::ifstream in("/proc/self/cmdline", std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string all = ss.str();
    size_t at = 0;
    while (at < all.size()) {
        size_t end = all.find('\0', at);
        if (end == std::string::npos) end = all.size();
        args.push_back(all.substr(at, end - at));
        at = end + 1;
    }
    // glibc keeps argv[0]'s address; the kernel laid the arguments out one after the other, and
    // /proc/self/cmdline says how long they are. Only an area that still matches is overwritten.
    char *argv0 = program_invocation_name;
    if (argv0 != nullptr && !all.empty() && std::memcmp(argv0, all.data(), all.size()) == 0) {
        g_title_area = argv0;
        g_title_size = all.size();
        // Keep glibc's own uses of the name working once the area is overwritten.
        program_invocation_name = ::strdup(argv0);
        const char *slash = std::strrchr(program_invocation_name, '/');
        program_invocation_short_name = const_cast<char *>(slash ? slash + 1 : program_invocation_name);
    }
    return args;
}

void set_process_title(const std::string &title)
{
    ::prctl(PR_SET_NAME, title.substr(0, 15).c_str(), 0, 0, 0);
    if (g_title_area == nullptr || g_title_size < 2) return;
    size_t n = std::min(title.size(), g_title_size - 1);
    std::memcpy(g_title_area, title.data(), n);
    std::memset(g_title_area + n, 0, g_title_size - n);
}

void sd_notify(const std::string &state)
{
    const char *path = std::getenv("NOTIFY_SOCKET");
    if (path == nullptr || (path[0] != '/' && path[0] != '@')) return;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    size_t len = std::strlen(path);
    if (len >= sizeof sa.sun_path) return;
    std::memcpy(sa.sun_path, path, len);
    if (path[0] == '@') sa.sun_path[0] = '\0'; // an abstract socket
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    socklen_t sl = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
    // Never blocking: the master's loop must not wait on a manager that does not read. A
    // notification that finds the queue full is lost, as one to an absent socket is.
    ssize_t n =
        ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL | MSG_DONTWAIT, reinterpret_cast<sockaddr *>(&sa), sl);
    (void)n; // systemd not listening must not stop the server
    ::close(fd);
}

uint64_t monotonic_usec()
{
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

bool write_pidfile(const std::string &path, pid_t pid, std::string &error)
{
    std::string tmp = fmt::format("{}.{}.tmp", path, static_cast<long>(pid));
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        error = fmt::format("cannot write the pid file '{}': {}", tmp, std::strerror(errno));
        return false;
    }
    std::string text = fmt::format("{}\n", static_cast<long>(pid));
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ok = ::close(fd) == 0 && ok;
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
        error = fmt::format("cannot write the pid file '{}': {}", path, std::strerror(errno));
        ::unlink(tmp.c_str());
        return false;
    }
    return true;
}

void remove_pidfile(const std::string &path, pid_t pid)
{
    std::ifstream in(path);
    long held = 0;
    if (in >> held && held == static_cast<long>(pid)) ::unlink(path.c_str());
}

bool drop_privileges(const std::string &user, const std::string &group, std::string &error)
{
    auto number = [](const std::string &s, unsigned long &out) {
        char *end = nullptr;
        out = std::strtoul(s.c_str(), &end, 10);
        return !s.empty() && end != nullptr && *end == '\0';
    };
    gid_t gid = ::getgid();
    uid_t uid = ::getuid();
    std::string user_name;
    unsigned long n = 0;
    if (!user.empty()) {
        struct passwd *pw = number(user, n) ? ::getpwuid(static_cast<uid_t>(n)) : ::getpwnam(user.c_str());
        if (pw == nullptr && !number(user, n)) {
            error = fmt::format("--user '{}': no such user", user);
            return false;
        }
        uid = pw ? pw->pw_uid : static_cast<uid_t>(n);
        if (pw) {
            gid = pw->pw_gid;
            user_name = pw->pw_name;
        }
    }
    if (!group.empty()) {
        struct group *gr = number(group, n) ? ::getgrgid(static_cast<gid_t>(n)) : ::getgrnam(group.c_str());
        if (gr == nullptr && !number(group, n)) {
            error = fmt::format("--group '{}': no such group", group);
            return false;
        }
        gid = gr ? gr->gr_gid : static_cast<gid_t>(n);
    }
    if (user.empty() && group.empty()) return true;
    if (!group.empty() || !user.empty()) {
        if (gid != ::getegid() && ::setgid(gid) != 0) {
            error = fmt::format("cannot switch to group {}: {}", static_cast<long>(gid), std::strerror(errno));
            return false;
        }
    }
    if (!user.empty() && uid != ::geteuid()) {
        if (!user_name.empty() && ::initgroups(user_name.c_str(), gid) != 0) {
            error = fmt::format("cannot set the groups of '{}': {}", user_name, std::strerror(errno));
            return false;
        }
        if (::setuid(uid) != 0) {
            error = fmt::format("cannot switch to user {}: {}", static_cast<long>(uid), std::strerror(errno));
            return false;
        }
    }
    return true;
}

} // namespace cwsgi::arbiter
