// listen.cc: --bind parsing and listening sockets.
#include "listen.hh"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "http.hh"

namespace cwsgi::core {

namespace {

bool parse_port(std::string_view s, int &port)
{
    int v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v < 0 || v > 65535) return false;
    port = v;
    return true;
}

bool set_flags(int fd, std::string &error, const std::string &what)
{
    int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || ::fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        error = fmt::format("cannot configure {}: {}", what, std::strerror(errno));
        return false;
    }
    return true;
}

constexpr int kBacklog = 2048; // gunicorn's default

} // namespace

bool parse_bind(const std::string &text, BindSpec &out, std::string &error)
{
    out = BindSpec{};
    out.text = text;
    if (text.rfind("unix:", 0) == 0) {
        out.kind = BindSpec::Kind::unix_path;
        out.path = text.substr(5);
        if (out.path.empty() || out.path.size() >= sizeof(sockaddr_un{}.sun_path)) {
            error = fmt::format("bad bind '{}': unix socket path is empty or too long", text);
            return false;
        }
        return true;
    }
    if (text.rfind("fd://", 0) == 0) {
        out.kind = BindSpec::Kind::fd;
        if (!parse_port(std::string_view(text).substr(5), out.fd) || out.fd < 0) {
            error = fmt::format("bad bind '{}': expected fd://N", text);
            return false;
        }
        return true;
    }
    out.kind = BindSpec::Kind::tcp;
    // The same split as a Host field's (ENV-KEYS-5), then the brackets come off: getaddrinfo
    // wants the bare address.
    std::string_view host, port_text;
    if (!split_host_port(text, host, port_text)) {
        if (host.size() == text.size()) {
            error = fmt::format("bad bind '{}': missing ']'", text);
        } else {
            error = fmt::format("bad bind '{}': expected [ADDR]:PORT", text);
        }
        return false;
    }
    bool bracketed = !host.empty() && host.front() == '[';
    if (bracketed) host = host.substr(1, host.size() - 2);
    // A bare port-less host keeps the default port; "[v6]" without ":PORT" does too.
    if (port_text.empty() && (bracketed ? text.size() == host.size() + 2 : text.find(':') == std::string::npos)) {
        port_text = "8000";
    }
    out.host = std::string(host);
    if (out.host.empty()) out.host = "0.0.0.0";
    if (!parse_port(port_text, out.port)) {
        error = fmt::format("bad bind '{}': port must be 0..65535", text);
        return false;
    }
    return true;
}

bool open_listeners(const std::vector<std::string> &binds, std::vector<Listener> &out, std::string &error)
{
    std::vector<std::string> list = binds.empty() ? std::vector<std::string>{"127.0.0.1:8000"} : binds;
    auto fail = [&](const std::string &msg) {
        error = msg;
        close_listeners(out);
        return false;
    };
    for (const std::string &b : list) {
        Listener l;
        if (!parse_bind(b, l.spec, error)) return fail(error);
        if (l.spec.kind == BindSpec::Kind::fd) {
            int type = 0;
            socklen_t len = sizeof type;
            if (::getsockopt(l.spec.fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) {
                return fail(fmt::format("bad bind '{}': fd {} is not a stream socket", b, l.spec.fd));
            }
            sockaddr_storage ss{};
            socklen_t sl = sizeof ss;
            ::getsockname(l.spec.fd, reinterpret_cast<sockaddr *>(&ss), &sl);
            l.is_unix = ss.ss_family == AF_UNIX;
            if (!set_flags(l.spec.fd, error, b)) return fail(error);
            ::listen(l.spec.fd, kBacklog); // harmless if it listens already
            l.fd = l.spec.fd;
            l.display = b;
            out.push_back(std::move(l));
            continue;
        }
        if (l.spec.kind == BindSpec::Kind::unix_path) {
            int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
            if (fd < 0) return fail(fmt::format("cannot create socket for '{}': {}", b, std::strerror(errno)));
            sockaddr_un sa{};
            sa.sun_family = AF_UNIX;
            std::memcpy(sa.sun_path, l.spec.path.c_str(), l.spec.path.size() + 1);
            struct stat st {};
            if (::stat(l.spec.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(l.spec.path.c_str());
            if (::bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) != 0 || ::listen(fd, kBacklog) != 0) {
                int e = errno;
                ::close(fd);
                return fail(fmt::format("cannot listen on '{}': {}", b, std::strerror(e)));
            }
            l.fd = fd;
            l.is_unix = true;
            l.display = "unix:" + l.spec.path;
            out.push_back(std::move(l));
            continue;
        }
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        addrinfo *res = nullptr;
        std::string port = std::to_string(l.spec.port);
        int gai = ::getaddrinfo(l.spec.host.c_str(), port.c_str(), &hints, &res);
        if (gai != 0) return fail(fmt::format("cannot resolve bind '{}': {}", b, gai_strerror(gai)));
        int fd = -1, last_errno = 0;
        for (addrinfo *ai = res; ai; ai = ai->ai_next) {
            fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
            if (fd < 0) {
                last_errno = errno;
                continue;
            }
            int one = 1;
            ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (ai->ai_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
            if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, kBacklog) == 0) break;
            last_errno = errno;
            ::close(fd);
            fd = -1;
        }
        ::freeaddrinfo(res);
        if (fd < 0) return fail(fmt::format("cannot listen on '{}': {}", b, std::strerror(last_errno)));
        l.fd = fd;
        out.push_back(std::move(l));
        Listener &added = out.back();
        int p = listener_port(added);
        bool v6 = added.spec.host.find(':') != std::string::npos;
        added.display = fmt::format("http://{}{}{}:{}", v6 ? "[" : "", added.spec.host, v6 ? "]" : "", p);
    }
    return true;
}

void close_listeners(std::vector<Listener> &listeners, bool unlink)
{
    for (Listener &l : listeners) {
        if (l.fd < 0) continue;
        ::close(l.fd);
        if (unlink && l.spec.kind == BindSpec::Kind::unix_path) ::unlink(l.spec.path.c_str());
        l.fd = -1;
    }
    listeners.clear();
}

bool adopt_listener(int fd, bool owns_path, Listener &out, std::string &error)
{
    out = Listener{};
    int type = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) {
        error = fmt::format("inherited descriptor {} is not a stream socket", fd);
        return false;
    }
    sockaddr_storage ss{};
    socklen_t sl = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &sl) != 0) {
        error = fmt::format("inherited descriptor {}: {}", fd, std::strerror(errno));
        return false;
    }
    if (!set_flags(fd, error, fmt::format("inherited descriptor {}", fd))) return false;
    out.fd = fd;
    out.spec.kind = BindSpec::Kind::fd;
    out.spec.fd = fd;
    out.spec.text = fmt::format("fd://{}", fd);
    if (ss.ss_family == AF_UNIX) {
        const auto *un = reinterpret_cast<const sockaddr_un *>(&ss);
        size_t n = sl > offsetof(sockaddr_un, sun_path) ? sl - offsetof(sockaddr_un, sun_path) : 0;
        std::string path(un->sun_path, ::strnlen(un->sun_path, n));
        out.is_unix = true;
        out.display = "unix:" + path;
        if (owns_path && !path.empty()) {
            out.spec.kind = BindSpec::Kind::unix_path;
            out.spec.path = path;
        }
        return true;
    }
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET) {
        ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in *>(&ss)->sin_addr, host, sizeof host);
        out.display = fmt::format("http://{}:{}", host, listener_port(out));
    } else {
        ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6 *>(&ss)->sin6_addr, host, sizeof host);
        out.display = fmt::format("http://[{}]:{}", host, listener_port(out));
    }
    out.spec.host = host;
    out.spec.port = listener_port(out);
    return true;
}

bool inherit_listeners(std::vector<Listener> &out, bool &found, std::string &error)
{
    found = false;
    std::vector<int> fds;
    bool systemd = false;
    const char *pid = std::getenv("LISTEN_PID");
    const char *count = std::getenv("LISTEN_FDS");
    if (pid != nullptr && count != nullptr && std::strtol(pid, nullptr, 10) == static_cast<long>(::getpid())) {
        long n = std::strtol(count, nullptr, 10);
        for (long i = 0; i < n && i < 1024; ++i) fds.push_back(3 + static_cast<int>(i));
        systemd = true;
        ::unsetenv("LISTEN_PID");
        ::unsetenv("LISTEN_FDS");
        ::unsetenv("LISTEN_FDNAMES");
    } else if (const char *list = std::getenv(kListenFdsEnv)) {
        std::string_view rest(list);
        while (!rest.empty()) {
            size_t comma = rest.find(',');
            std::string_view item = rest.substr(0, comma);
            int fd = -1;
            if (!parse_port(item, fd)) {
                error =
                    fmt::format("bad {}='{}': expected descriptor numbers separated by commas", kListenFdsEnv, list);
                return false;
            }
            fds.push_back(fd);
            rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        }
        ::unsetenv(kListenFdsEnv);
    }
    for (int fd : fds) {
        Listener l;
        if (!adopt_listener(fd, !systemd, l, error)) {
            close_listeners(out, false);
            return false;
        }
        out.push_back(std::move(l));
    }
    found = !out.empty();
    return true;
}

std::string listener_fd_list(const std::vector<Listener> &listeners)
{
    std::string out;
    for (const Listener &l : listeners) {
        if (!out.empty()) out += ',';
        out += std::to_string(l.fd);
    }
    return out;
}

int listener_port(const Listener &l)
{
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (l.fd < 0 || ::getsockname(l.fd, reinterpret_cast<sockaddr *>(&ss), &len) != 0) return -1;
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in *>(&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6 *>(&ss)->sin6_port);
    return -1;
}

} // namespace cwsgi::core
