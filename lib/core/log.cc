// log.cc: the error log and the access log. Each line goes out in one write(2) so lines from
// concurrent threads and processes never interleave (pipes keep writes <= PIPE_BUF atomic,
// and O_APPEND files keep each write whole).
#include "log.hh"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

namespace cwsgi::core {

namespace {

void write_all(int fd, const std::string &s)
{
    size_t off = 0;
    while (off < s.size()) {
        ssize_t n = ::write(fd, s.data() + off, s.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return; // a log that cannot be written must not take the server down
        }
        off += static_cast<size_t>(n);
    }
}

bool open_append(const std::string &path, int &fd, bool &owns, std::string &error)
{
    int f = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (f < 0) {
        error = fmt::format("cannot open log file '{}': {}", path, std::strerror(errno));
        return false;
    }
    fd = f;
    owns = true;
    return true;
}

// Opens `path` again and moves the new file under `fd` (dup2 swaps atomically for writers).
bool reopen_under(int fd, const std::string &path, std::string &error)
{
    int nfd = -1;
    bool owns = false;
    if (!open_append(path, nfd, owns, error)) return false;
    int rc = ::dup3(nfd, fd, O_CLOEXEC);
    int e = errno;
    ::close(nfd);
    if (rc < 0) {
        error = fmt::format("cannot reopen log file '{}': {}", path, std::strerror(e));
        return false;
    }
    return true;
}

const char *level_name(uint32_t level)
{
    if (level >= 50) return "CRITICAL";
    if (level >= 40) return "ERROR";
    if (level >= 30) return "WARNING";
    if (level >= 20) return "INFO";
    return "DEBUG";
}

// Escapes bytes that would break a log line: controls become \xHH, except that the message
// may not smuggle a fake line into the log (LOG-ERR-2).
void append_escaped(std::string &out, std::string_view s, bool escape_quote)
{
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7f || (escape_quote && (c == '"' || c == '\\'))) {
            if (c == '"' || c == '\\') {
                out.push_back('\\');
                out.push_back(static_cast<char>(c));
            } else {
                static constexpr char kHex[] = "0123456789abcdef";
                char esc[4] = {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
                out.append(esc, 4);
            }
        } else {
            out.push_back(static_cast<char>(c));
        }
    }
}

std::string timestamp(int64_t t, const char *format)
{
    time_t tt = static_cast<time_t>(t);
    struct tm tm_utc {};
    gmtime_r(&tt, &tm_utc);
    char buf[64];
    size_t n = std::strftime(buf, sizeof buf, format, &tm_utc);
    return std::string(buf, n);
}

} // namespace

Logger::~Logger()
{
    if (owns_fd_) ::close(fd_);
}

bool Logger::open(const std::string &path, std::string &error)
{
    if (path.empty() || path == "-") return true;
    int fd = -1;
    bool owns = false;
    if (!open_append(path, fd, owns, error)) return false;
    if (owns_fd_) ::close(fd_);
    fd_ = fd;
    owns_fd_ = owns;
    path_ = path;
    return true;
}

bool Logger::reopen(std::string &error) { return !owns_fd_ || reopen_under(fd_, path_, error); }

void Logger::write(uint32_t level, std::string_view msg)
{
    if (!enabled(level)) return;
    std::string line = fmt::format("[{}] [{}] [{}] ", timestamp(std::time(nullptr), "%Y-%m-%d %H:%M:%S +0000"),
                                   static_cast<long>(::getpid()), level_name(level));
    append_escaped(line, msg, false);
    line.push_back('\n');
    write_all(fd_, line);
}

AccessLog::~AccessLog()
{
    if (owns_fd_) ::close(fd_);
}

bool AccessLog::open(const std::string &path, std::string &error)
{
    if (path.empty()) return true;
    if (path == "-") {
        fd_ = 1;
        return true;
    }
    path_ = path;
    return open_append(path, fd_, owns_fd_, error);
}

bool AccessLog::reopen(std::string &error) { return !owns_fd_ || reopen_under(fd_, path_, error); }

namespace {

// The access log's "[10/Oct/2026:13:55:36 +0000]" changes once a second: each thread keeps
// the last one it formatted.
struct StampCache {
    int64_t second = -1;
    char text[32];
    size_t len = 0;
};
thread_local StampCache t_stamp;

std::string_view access_stamp(int64_t t)
{
    StampCache &c = t_stamp;
    if (c.second != t) {
        time_t tt = static_cast<time_t>(t);
        struct tm tm_utc {};
        gmtime_r(&tt, &tm_utc);
        c.len = std::strftime(c.text, sizeof c.text, "%d/%b/%Y:%H:%M:%S +0000", &tm_utc);
        c.second = t;
    }
    return {c.text, c.len};
}

void append_number(std::string &out, uint64_t v)
{
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, static_cast<size_t>(r.ptr - buf));
}

// Apache combined: %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"
void append_record(std::string &line, const AccessRecord &r, int64_t unix_time)
{
    append_escaped(line, r.remote_addr.empty() ? std::string_view("-") : r.remote_addr, true);
    line += " - - [";
    line += access_stamp(unix_time);
    line += "] \"";
    append_escaped(line, r.method, true);
    line.push_back(' ');
    append_escaped(line, r.target, true);
    line.push_back(' ');
    append_escaped(line, r.protocol, true);
    line += "\" ";
    if (r.status) {
        append_number(line, r.status);
    } else {
        line.push_back('-');
    }
    line.push_back(' ');
    if (r.body_bytes) {
        append_number(line, r.body_bytes);
    } else {
        line.push_back('-');
    }
    line += " \"";
    append_escaped(line, r.referer.empty() ? std::string_view("-") : r.referer, true);
    line += "\" \"";
    append_escaped(line, r.user_agent.empty() ? std::string_view("-") : r.user_agent, true);
    line.push_back('"');
}

} // namespace

std::string AccessLog::format(const AccessRecord &r, int64_t unix_time)
{
    std::string line;
    line.reserve(160);
    append_record(line, r, unix_time);
    return line;
}

void AccessLog::write(const AccessRecord &r)
{
    if (fd_ < 0) return;
    // One buffer per thread, reused: its capacity stays, so a line costs no allocation.
    thread_local std::string line;
    line.clear();
    append_record(line, r, std::time(nullptr));
    line.push_back('\n');
    write_all(fd_, line);
}

} // namespace cwsgi::core
