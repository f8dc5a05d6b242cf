// listen.hh: --bind parsing and listening sockets (TCP v4/v6, unix:PATH, fd://N).
//
// The core opens every listener before any worker starts, so each adapter (and later the
// arbiter's workers) serves the same sockets the same way.
#pragma once

#include <string>
#include <vector>

namespace cwsgi::core {

struct BindSpec {
    enum class Kind { tcp, unix_path, fd } kind = Kind::tcp;
    std::string host; // tcp: "127.0.0.1", "::1", "0.0.0.0", "localhost"
    int port = 0;     // tcp
    std::string path; // unix
    int fd = -1;      // fd://N
    std::string text; // as given, for logs
};

/// Parses "HOST:PORT", "HOST" (port 8000), "[v6]:PORT", "unix:PATH", "fd://N".
/// Returns false with a one-line error.
bool parse_bind(const std::string &text, BindSpec &out, std::string &error);

/// One listening socket.
struct Listener {
    int fd = -1;
    BindSpec spec;
    bool is_unix = false;
    std::string display; // "http://127.0.0.1:8000", "unix:/run/app.sock"
};

/// Opens (or adopts, for fd://) every bind: SO_REUSEADDR, backlog 2048, close-on-exec,
/// non-blocking. A stale unix socket file is replaced. Returns false with a one-line error and
/// closes what it opened.
bool open_listeners(const std::vector<std::string> &binds, std::vector<Listener> &out, std::string &error);
/// Closes listeners and unlinks unix socket files that open_listeners created, unless `unlink`
/// is false (another process, such as a re-executed master, still serves them).
void close_listeners(std::vector<Listener> &listeners, bool unlink = true);

/// The environment variable that passes listening sockets to a re-executed master (SIGUSR2):
/// their descriptor numbers, comma-separated, as gunicorn's GUNICORN_FD.
inline constexpr const char *kListenFdsEnv = "CWSGI_FD";

/// Adopts the listening sockets this process inherited instead of opening `binds`: systemd's
/// (LISTEN_PID is this process and LISTEN_FDS counts them from descriptor 3; both variables are
/// then unset, and the socket files are systemd's to remove), else a re-executing master's
/// (CWSGI_FD; unset too). Sets `found` to whether there were any. False with a one-line error
/// when a passed descriptor is not a listening stream socket.
bool inherit_listeners(std::vector<Listener> &out, bool &found, std::string &error);

/// Takes `fd`, a stream socket this process inherited, as a listener: non-blocking and
/// close-on-exec, its display taken from the address it is bound to. A unix socket file is
/// unlinked at close only when `owns_path`.
bool adopt_listener(int fd, bool owns_path, Listener &out, std::string &error);

/// "3,4,5": the descriptors of `listeners`, for kListenFdsEnv.
std::string listener_fd_list(const std::vector<Listener> &listeners);

/// The port a TCP listener is bound to (useful with port 0). -1 for others.
int listener_port(const Listener &l);

} // namespace cwsgi::core
