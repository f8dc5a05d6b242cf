// head.cc: the request head as the core sees it (see head.hh).
#include "head.hh"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdio>

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

/// Numeric host and port of `sa` into the head's arena; nothing for a unix socket.
void keep_address(const sockaddr_storage &ss, socklen_t len, std::string_view &host, std::string_view &port,
                  core::RequestHead &head)
{
    if (len == 0) return;
    char text[INET6_ADDRSTRLEN] = "";
    unsigned p = 0;
    if (ss.ss_family == AF_INET) {
        const auto *in = reinterpret_cast<const sockaddr_in *>(&ss);
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
        p = ntohs(in->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const auto *in6 = reinterpret_cast<const sockaddr_in6 *>(&ss);
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        p = ntohs(in6->sin6_port);
    } else {
        return;
    }
    char digits[8];
    int n = std::snprintf(digits, sizeof digits, "%u", p);
    host = head.keep(text);
    port = head.keep(std::string_view(digits, static_cast<size_t>(n)));
}

void fill_connection(h2o_req_t *req, h2o_socket_t *sock, core::RequestHead &out)
{
    sockaddr_storage ss{};
    socklen_t len = req->conn->callbacks->get_peername(req->conn, reinterpret_cast<sockaddr *>(&ss));
    out.is_unix = len != 0 && ss.ss_family == AF_UNIX;
    keep_address(ss, len, out.remote_addr, out.remote_port, out);
    ss = {};
    len = req->conn->callbacks->get_sockname(req->conn, reinterpret_cast<sockaddr *>(&ss));
    if (len != 0 && ss.ss_family == AF_UNIX) out.is_unix = true;
    keep_address(ss, len, out.local_addr, out.local_port, out);
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
        std::string_view name = fields[i].name != nullptr ? std::string_view(fields[i].name, fields[i].name_len)
                                                          : std::string_view();
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
        int n = std::snprintf(digits, sizeof digits, "%zu", req->entity.len);
        if (!out.add_header("content-length", std::string_view(digits, static_cast<size_t>(n)))) return "out of memory";
    }
    return nullptr;
}

} // namespace

const char *build_head(h2o_req_t *req, core::RequestHead &out)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket != nullptr ? req->conn->callbacks->get_socket(req->conn)
                                                                     : nullptr;
    fill_connection(req, sock, out);
    return req->version >= 0x200 ? build_http2(req, out) : build_http1(sock, out);
}

} // namespace cwsgi::adapters::h2o
