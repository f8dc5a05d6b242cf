// log.cc: the error log and the access log. Each line goes out in one write(2) so lines from
// concurrent threads and processes never interleave (pipes keep writes <= PIPE_BUF atomic,
// and O_APPEND files keep each write whole).
#include "log.hh"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
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
                out += fmt::format("\\x{:02x}", c);
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
    return true;
}

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
    return open_append(path, fd_, owns_fd_, error);
}

std::string AccessLog::format(const AccessRecord &r, int64_t unix_time)
{
    // Apache combined: %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"
    std::string line;
    line.reserve(160);
    append_escaped(line, r.remote_addr.empty() ? std::string_view("-") : r.remote_addr, true);
    line += " - - [";
    line += timestamp(unix_time, "%d/%b/%Y:%H:%M:%S +0000");
    line += "] \"";
    append_escaped(line, r.method, true);
    line.push_back(' ');
    append_escaped(line, r.target, true);
    line.push_back(' ');
    append_escaped(line, r.protocol, true);
    line += "\" ";
    line += r.status ? std::to_string(r.status) : std::string("-");
    line.push_back(' ');
    line += r.body_bytes ? std::to_string(r.body_bytes) : std::string("-");
    line += " \"";
    append_escaped(line, r.referer.empty() ? std::string_view("-") : r.referer, true);
    line += "\" \"";
    append_escaped(line, r.user_agent.empty() ? std::string_view("-") : r.user_agent, true);
    line.push_back('"');
    return line;
}

void AccessLog::write(const AccessRecord &r)
{
    if (fd_ < 0) return;
    std::string line = format(r, std::time(nullptr));
    line.push_back('\n');
    write_all(fd_, line);
}

} // namespace cwsgi::core
