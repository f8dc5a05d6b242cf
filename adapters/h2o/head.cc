// head.cc: the request head as the core sees it (see head.hh).
#include "head.hh"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>

namespace cwsgi::adapters::h2o {

namespace {

/// Fields the raw re-parse can hold: libh2o itself refuses a head with more than
/// H2O_MAX_HEADERS (100) fields before the handler, so this always suffices.
constexpr size_t kMaxFields = 128;

std::string_view trim(std::string_view v)
{
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
}

/// Appends the decimal digits of `v` to `out`.
void append_decimal(std::string &out, unsigned v)
{
    char digits[12];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, v);
    (void)ec; // 12 digits hold any unsigned
    out.append(digits, end);
}

/// Numeric host and port of `ss` (nothing for a unix socket or an unknown family). IPv4, the
/// common case, is formatted here: inet_ntop goes through sprintf.
void format_address(const sockaddr_storage &ss, socklen_t len, std::string &host, std::string &port)
{
    host.clear();
    port.clear();
    if (len == 0) return;
    if (ss.ss_family == AF_INET) {
        const auto *in = reinterpret_cast<const sockaddr_in *>(&ss);
        const auto *b = reinterpret_cast<const unsigned char *>(&in->sin_addr);
        for (int i = 0; i < 4; ++i) {
            if (i > 0) host.push_back('.');
            append_decimal(host, b[i]);
        }
        append_decimal(port, ntohs(in->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const auto *in6 = reinterpret_cast<const sockaddr_in6 *>(&ss);
        char text[INET6_ADDRSTRLEN] = "";
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        host = text;
        append_decimal(port, ntohs(in6->sin6_port));
    }
}

void fill_connection(h2o_req_t *req, h2o_socket_t *sock, AddressCache &addresses, core::RequestHead &out)
{
    const AddressCache::Entry &e = addresses.get(req->conn);
    out.is_unix = e.is_unix;
    // An empty string is "no address" (a unix socket): the head's views stay empty then.
    if (!e.remote_addr.empty()) out.remote_addr = out.keep(e.remote_addr);
    if (!e.remote_port.empty()) out.remote_port = out.keep(e.remote_port);
    if (!e.local_addr.empty()) out.local_addr = out.keep(e.local_addr);
    if (!e.local_port.empty()) out.local_port = out.keep(e.local_port);
    out.is_tls = sock != nullptr && sock->ssl != nullptr;
}

const char *build_http1(h2o_socket_t *sock, core::RequestHead &out)
{
    if (sock == nullptr || sock->input == nullptr) return "the connection's input buffer is gone";
    const char *method = nullptr, *path = nullptr;
    size_t method_len = 0, path_len = 0, count = kMaxFields;
    int minor = -1;
    phr_header fields[kMaxFields];
    int n = phr_parse_request(sock->input->bytes, sock->input->size, &method, &method_len, &path, &path_len, &minor,
                              fields, &count, 0);
    if (n <= 0) return "the request head could not be read again";
    out.method = out.keep(std::string_view(method, method_len));
    out.target = out.keep(std::string_view(path, path_len));
    out.http_major = 1;
    out.http_minor = static_cast<uint32_t>(minor);
    for (size_t i = 0; i < count; ++i) {
        // picohttpparser reports an obs-fold continuation line as a field without a name; the
        // core refuses the empty name (REQ-HDR-1), so it is passed on as it is.
        std::string_view name =
            fields[i].name != nullptr ? std::string_view(fields[i].name, fields[i].name_len) : std::string_view();
        if (!out.add_header(name, trim(std::string_view(fields[i].value, fields[i].value_len)))) {
            return "out of memory";
        }
    }
    return nullptr;
}

const char *build_http2(h2o_req_t *req, core::RequestHead &out)
{
    out.method = out.keep(std::string_view(req->input.method.base, req->input.method.len));
    out.target = out.keep(std::string_view(req->input.path.base, req->input.path.len));
    out.authority = out.keep(std::string_view(req->input.authority.base, req->input.authority.len));
    out.http_major = 2;
    out.http_minor = 0;
    for (size_t i = 0; i < req->headers.size; ++i) {
        const h2o_header_t &h = req->headers.entries[i];
        if (!out.add_header(std::string_view(h.name->base, h.name->len), std::string_view(h.value.base, h.value.len))) {
            return "out of memory";
        }
    }
    if (req->entity.base != nullptr) {
        // libh2o checked the body against the content-length it removed from the list; the
        // buffered body's size is the same number (or the only one, without the field).
        char digits[24];
        auto [end, ec] = std::to_chars(digits, digits + sizeof digits, req->entity.len);
        (void)ec; // 24 digits hold any size_t
        if (!out.add_header("content-length", std::string_view(digits, static_cast<size_t>(end - digits)))) {
            return "out of memory";
        }
    }
    return nullptr;
}

} // namespace

const AddressCache::Entry &AddressCache::get(h2o_conn_t *conn)
{
    Entry &e = slots_[conn->id % kSlots];
    if (e.id == conn->id && conn->id != 0) return e;
    e.id = conn->id;
    sockaddr_storage ss{};
    socklen_t len = conn->callbacks->get_peername(conn, reinterpret_cast<sockaddr *>(&ss));
    e.is_unix = len != 0 && ss.ss_family == AF_UNIX;
    format_address(ss, len, e.remote_addr, e.remote_port);
    ss = {};
    len = conn->callbacks->get_sockname(conn, reinterpret_cast<sockaddr *>(&ss));
    if (len != 0 && ss.ss_family == AF_UNIX) e.is_unix = true;
    format_address(ss, len, e.local_addr, e.local_port);
    return e;
}

const char *build_head(h2o_req_t *req, AddressCache &addresses, core::RequestHead &out)
{
    h2o_socket_t *sock =
        req->conn->callbacks->get_socket != nullptr ? req->conn->callbacks->get_socket(req->conn) : nullptr;
    fill_connection(req, sock, addresses, out);
    return req->version >= 0x200 ? build_http2(req, out) : build_http1(sock, out);
}

} // namespace cwsgi::adapters::h2o
