// mhd_head.cc: request heads from libmicrohttpd, and the checks it leaves out (see the header).
#include "mhd_head.hh"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <string_view>

namespace cwsgi::adapters::mhd {

namespace {

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view v)
{
    while (!v.empty() && is_ows(v.front())) v.remove_prefix(1);
    while (!v.empty() && is_ows(v.back())) v.remove_suffix(1);
    return v;
}

struct Collector {
    core::RequestHead *head;        // the request's fields go here, or
    std::vector<core::Header> *out; // the trailers here
    MhdFraming *framing;
    const char *error = nullptr;
    const char *last_end = nullptr; // just past the last value seen
};

// Far more than any field can hold (the core's per-field limit is 8190 bytes by default); it
// only bounds the walk over the bytes between a name and its value.
constexpr uintptr_t kMaxGap = 1u << 20;

MHD_Result collect_one(void *cls, MHD_ValueKind, const char *key, size_t key_size, const char *value, size_t value_size)
{
    auto *c = static_cast<Collector *>(cls);
    if (key == nullptr || value == nullptr) {
        c->error = "field line without a name or value";
        return MHD_NO;
    }
    // The name must end exactly where libmicrohttpd put the NUL over the colon, followed only
    // by the whitespace it skipped before the value. A name that was moved or grown elsewhere
    // is the trace of an obs-fold continuation line (which libmicrohttpd glues onto the name).
    const uintptr_t k = reinterpret_cast<uintptr_t>(key), v = reinterpret_cast<uintptr_t>(value);
    const uintptr_t colon = k + key_size;
    if (v <= colon || v - colon > kMaxGap || key[key_size] != '\0') {
        c->error = "obs-fold or malformed field line";
        return MHD_NO;
    }
    for (const char *p = key + key_size + 1; p < value; ++p) {
        if (!is_ows(*p)) {
            c->error = "obs-fold or malformed field line";
            return MHD_NO;
        }
    }
    // A line ended by CR LF leaves two NULs after the value; anything else means the value
    // held a NUL (libmicrohttpd's strings stop there) or the line ended in a bare LF.
    if (value[value_size] != '\0' || value[value_size + 1] != '\0') {
        c->error = "NUL in a field value, or a field line not ended by CR LF";
        return MHD_NO;
    }
    std::string_view name(key, key_size);
    std::string_view raw(value, value_size);
    if (c->framing != nullptr && core::iequals(name, "transfer-encoding")) {
        // libmicrohttpd reads only the first Transfer-Encoding field and compares it whole.
        if (c->framing->te_fields++ == 0) c->framing->te_chunked = core::iequals(raw, "chunked");
    }
    std::string_view trimmed = trim(raw);
    if (c->head != nullptr) {
        if (!c->head->add_header(name, trimmed)) {
            c->error = "out of memory";
            return MHD_NO;
        }
    } else {
        c->out->push_back({std::string(name), std::string(trimmed)});
    }
    c->last_end = value + value_size;
    return MHD_YES;
}

} // namespace

bool parse_http_version(const char *version, uint32_t &major, uint32_t &minor)
{
    if (version == nullptr || std::strlen(version) != 8 || std::strncmp(version, "HTTP/", 5) != 0) return false;
    if (version[5] < '0' || version[5] > '9' || version[6] != '.' || version[7] < '0' || version[7] > '9') {
        return false;
    }
    major = static_cast<uint32_t>(version[5] - '0');
    minor = static_cast<uint32_t>(version[7] - '0');
    return true;
}

const char *check_request_line(const char *method, uintptr_t uri, size_t target_len, const char *version)
{
    // libmicrohttpd cuts the method at the first space and skips further spaces, so the
    // target starts right after the method's terminator only when the method had no NUL and
    // was followed by exactly one space.
    const uintptr_t m = reinterpret_cast<uintptr_t>(method);
    if (uri != m + std::strlen(method) + 1) return "NUL in the method, or more than one space after it";
    // It finds the version after the last space of the line; the target we copied stops at
    // the first NUL, so a gap here means the target held a NUL.
    if (reinterpret_cast<uintptr_t>(version) != uri + target_len + 1) return "NUL in the request target";
    return nullptr;
}

namespace {

const char *collect(MHD_Connection *conn, MHD_ValueKind kind, Collector &c, const char *line_before)
{
    MHD_get_connection_values_n(conn, kind, &collect_one, &c);
    if (c.error != nullptr) return c.error;
    // The block must end right after the last line: its CR LF, then the empty line's CR LF,
    // four NULs in all. libmicrohttpd 0.9.75 takes a field line with an empty name (": x")
    // for the end of the block once its colon is overwritten, and would parse what follows as
    // the body or the next request; the bytes of that line sit exactly here.
    const char *end = c.last_end;
    if (end == nullptr && line_before != nullptr) end = line_before + std::strlen(line_before);
    if (end != nullptr && (end[0] != '\0' || end[1] != '\0' || end[2] != '\0' || end[3] != '\0')) {
        return "a field line with an empty name, or a block not ended by CR LF CR LF";
    }
    return nullptr;
}

} // namespace

const char *collect_fields(MHD_Connection *conn, MHD_ValueKind kind, core::RequestHead &out, MhdFraming *framing,
                           const char *line_before)
{
    Collector c{&out, nullptr, framing};
    return collect(conn, kind, c, line_before);
}

const char *collect_fields(MHD_Connection *conn, MHD_ValueKind kind, std::vector<core::Header> &out,
                           MhdFraming *framing, const char *line_before)
{
    Collector c{nullptr, &out, framing};
    return collect(conn, kind, c, line_before);
}

const char *framing_mismatch(const core::HeadCheck &check, const MhdFraming &mhd)
{
    if (check.body == core::BodyKind::chunked) {
        if (mhd.te_fields != 1 || !mhd.te_chunked) {
            return "libmicrohttpd 0.9.75 decodes chunked bodies only with a single "
                   "'Transfer-Encoding: chunked' field";
        }
        return nullptr;
    }
    if (mhd.te_fields > 0) {
        return "libmicrohttpd 0.9.75 reads a body with a Transfer-Encoding other than chunked "
               "until the connection closes";
    }
    return nullptr;
}

void format_address(const struct sockaddr *sa, std::string &host, std::string &port)
{
    host.clear();
    port.clear();
    if (sa == nullptr) return;
    char buf[INET6_ADDRSTRLEN] = {0};
    if (sa->sa_family == AF_INET) {
        const auto *in = reinterpret_cast<const sockaddr_in *>(sa);
        if (inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf) != nullptr) host = buf;
        port = std::to_string(ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const auto *in6 = reinterpret_cast<const sockaddr_in6 *>(sa);
        if (inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf) != nullptr) host = buf;
        port = std::to_string(ntohs(in6->sin6_port));
    }
}

} // namespace cwsgi::adapters::mhd
