// log.hh: the error log (leveled, one line per message, gunicorn's format) and the access log
// (Apache combined format, gunicorn's default).
//
// Both write each line with one write(2) call, so lines from many threads never interleave,
// and both are safe to use from any thread.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace cwsgi::core {

/// The error log ("the errors stream", LOG-ERR-*). Lines look like
/// "[2026-11-27 17:00:00 +0000] [4242] [ERROR] message".
class Logger {
public:
    Logger() = default;
    ~Logger();
    Logger(const Logger &) = delete;
    Logger &operator=(const Logger &) = delete;

    /// Opens `path` for appending ("-" = stderr). Returns false and leaves stderr on failure.
    bool open(const std::string &path, std::string &error);
    /// Opens the file again by its name (SIGUSR1, after logrotate renamed it) and puts it in place
    /// of the old one under the same descriptor, so a line being written by another thread goes
    /// to one file or the other, whole. No-op for stderr. False with a reason when the open fails
    /// (the old file stays). Threads: any.
    bool reopen(std::string &error);
    void set_level(uint32_t level) { level_ = level; }
    uint32_t level() const { return level_; }
    bool enabled(uint32_t level) const { return level >= level_; }
    /// The descriptor lines go to (2 for stderr), for writers that cannot take the lock or
    /// allocate, such as the fiber layer's stack-overflow report. Owned by the Logger.
    int fd() const { return fd_; }

    /// Writes one line at `level` (CWSGI_LOG_*); control characters in msg are escaped so one
    /// message is one line (LOG-ERR-2). Threads: any.
    void write(uint32_t level, std::string_view msg);

    void debug(std::string_view m) { write(10, m); }
    void info(std::string_view m) { write(20, m); }
    void warning(std::string_view m) { write(30, m); }
    void error(std::string_view m) { write(40, m); }

private:
    int fd_ = 2;
    bool owns_fd_ = false;
    uint32_t level_ = 20;
    std::string path_;
};

/// One access-log record.
struct AccessRecord {
    std::string_view remote_addr;
    std::string_view method, target, protocol;
    uint32_t status = 0;
    uint64_t body_bytes = 0; // response body bytes sent
    std::string_view referer, user_agent;
    int64_t duration_us = 0;
};

/// The access log in Apache combined format:
/// `h - - [t] "r" s b "f" "a"` (b is "-" for 0 bytes, as Apache and gunicorn print it).
class AccessLog {
public:
    AccessLog() = default;
    ~AccessLog();
    AccessLog(const AccessLog &) = delete;
    AccessLog &operator=(const AccessLog &) = delete;

    /// Opens `path` ("-" = stdout, "" = off). Returns false on failure with a reason.
    bool open(const std::string &path, std::string &error);
    /// As Logger::reopen (no-op for stdout and when off).
    bool reopen(std::string &error);
    bool enabled() const { return fd_ >= 0; }
    /// Writes one record. Threads: any.
    void write(const AccessRecord &r);
    /// Formats one record as a line without the trailing newline (tested on its own).
    static std::string format(const AccessRecord &r, int64_t unix_time);

private:
    int fd_ = -1;
    bool owns_fd_ = false;
    std::string path_;
};

} // namespace cwsgi::core
