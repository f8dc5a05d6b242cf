// writer.cc: the HTTP/1.1 response head writer (writer.hh). Appends to a std::string the
// caller reuses, so that a connection in steady state writes its heads without allocating.
#include "writer.hh"

#include <charconv>
#include <cstring>
#include <ctime>
#include <iterator>

namespace cwsgi::http1 {

namespace {

void append_number(std::string &out, uint64_t n, int base = 10)
{
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, n, base);
    out.append(buf, static_cast<size_t>(r.ptr - buf));
}

void append_field(std::string &out, std::string_view name, std::string_view value)
{
    out.append(name);
    out.append(": ");
    out.append(value);
    out.append("\r\n");
}

// The IMF-fixdate of `t` into `buf` (29 bytes), with fixed English names: strftime would
// follow the process's locale.
void format_imf_fixdate(time_t t, char *buf)
{
    static constexpr const char *kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char *kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    gmtime_r(&t, &tm);
    auto two = [](char *p, int v) {
        p[0] = static_cast<char>('0' + v / 10);
        p[1] = static_cast<char>('0' + v % 10);
    };
    std::memcpy(buf, kDays[tm.tm_wday], 3);
    buf[3] = ',';
    buf[4] = ' ';
    two(buf + 5, tm.tm_mday);
    buf[7] = ' ';
    std::memcpy(buf + 8, kMonths[tm.tm_mon], 3);
    buf[11] = ' ';
    int year = tm.tm_year + 1900;
    two(buf + 12, (year / 100) % 100);
    two(buf + 14, year % 100);
    buf[16] = ' ';
    two(buf + 17, tm.tm_hour);
    buf[19] = ':';
    two(buf + 20, tm.tm_min);
    buf[22] = ':';
    two(buf + 23, tm.tm_sec);
    std::memcpy(buf + 25, " GMT", 4);
}

} // namespace

std::string_view http_date()
{
    // One cache per thread: no lock, and a thread formats at most once a second.
    thread_local time_t cached = -1;
    thread_local char text[29];
    time_t now = time(nullptr);
    if (now != cached) {
        format_imf_fixdate(now, text);
        cached = now;
    }
    return {text, sizeof text};
}

void write_head(std::string &out, uint32_t minor, uint32_t status, std::string_view reason,
                std::span<const core::Field> headers, bool chunked)
{
    out.append(minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ");
    append_number(out, status);
    out.push_back(' ');
    out.append(reason.empty() ? std::string_view(core::reason_phrase(status)) : reason);
    out.append("\r\n");
    bool has_date = false;
    for (const core::Field &f : headers) {
        append_field(out, f.name, f.value);
        if (f.name.size() == 4 && core::iequals(f.name, "date")) has_date = true;
    }
    if (!has_date) append_field(out, "Date", http_date());
    if (chunked) out.append("Transfer-Encoding: chunked\r\n");
    out.append("\r\n");
}

void write_head(std::string &out, uint32_t minor, const core::ResponseHead &head)
{
    write_head(out, minor, head.status, head.reason, head.headers, head.framing.framing == core::Framing::chunked);
}

void write_error(std::string &out, uint32_t minor, uint32_t status) { write_error(out, minor, status, false); }

void write_error(std::string &out, uint32_t minor, uint32_t status, bool head_request)
{
    core::ErrorResponse err = core::make_error_response(status);
    core::Field fields[8];
    size_t n = 0;
    for (const core::Header &h : err.headers) {
        if (n == std::size(fields)) break;
        fields[n++] = {h.name, h.value};
    }
    write_head(out, minor, err.status, err.reason, std::span<const core::Field>(fields, n), false);
    if (!head_request) out.append(err.body);
}

void write_chunk_header(std::string &out, size_t size)
{
    append_number(out, size, 16);
    out.append("\r\n");
}

void write_last_chunk(std::string &out, std::span<const core::Header> trailers)
{
    out.append("0\r\n");
    for (const core::Header &h : trailers) append_field(out, h.name, h.value);
    out.append("\r\n");
}

} // namespace cwsgi::http1
