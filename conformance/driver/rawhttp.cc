// rawhttp.cc: the raw-socket HTTP/1.x client (see rawhttp.hh). Parsing is deliberately
// literal: what the server sent is what the case sees.
#include "rawhttp.hh"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#ifdef CWSGI_CONFORMANCE_HAVE_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#endif

namespace conf {

using clock = std::chrono::steady_clock;

static double ms_since(clock::time_point t0)
{
    return std::chrono::duration<double, std::milli>(clock::now() - t0).count();
}

const char *framing_name(Framing f)
{
    switch (f) {
    case Framing::none: return "no body";
    case Framing::length: return "content-length";
    case Framing::chunked: return "chunked";
    case Framing::close: return "close-delimited";
    }
    return "?";
}

bool iequals(std::string_view a, std::string_view b)
{
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); i++) {
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
            return false;
        }
    }
    return true;
}

std::string escape_bytes(std::string_view s, size_t max)
{
    std::string out;
    for (size_t i = 0; i < s.size() && i < max; i++) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == '\r') {
            out += "\\r";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\\') {
            out += "\\\\";
        } else if (c < 0x20 || c >= 0x7f) {
            char tmp[8];
            snprintf(tmp, sizeof tmp, "\\x%02x", c);
            out += tmp;
        } else {
            out += static_cast<char>(c);
        }
    }
    if (s.size() > max) {
        out += "...(" + std::to_string(s.size()) + " bytes)";
    }
    return out;
}

static std::string trim_ows(std::string_view v)
{
    size_t b = 0, e = v.size();
    while (b < e && (v[b] == ' ' || v[b] == '\t')) b++;
    while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
    return std::string(v.substr(b, e - b));
}

std::optional<std::string> Response::header(std::string_view name) const
{
    for (const auto &f : headers) {
        if (iequals(f.name, name)) {
            return f.value;
        }
    }
    return std::nullopt;
}

std::vector<std::string> Response::headers_named(std::string_view name) const
{
    std::vector<std::string> out;
    for (const auto &f : headers) {
        if (iequals(f.name, name)) {
            out.push_back(f.value);
        }
    }
    return out;
}

bool Response::has_token(std::string_view header_name, std::string_view token) const
{
    for (const auto &v : headers_named(header_name)) {
        size_t i = 0;
        while (i <= v.size()) {
            size_t j = v.find(',', i);
            if (j == std::string::npos) j = v.size();
            if (iequals(trim_ows(std::string_view(v).substr(i, j - i)), token)) {
                return true;
            }
            i = j + 1;
        }
    }
    return false;
}

std::string Response::summary() const
{
    if (status == 0) {
        return "no response (" + (error.empty() ? std::string("nothing") : error) + ")";
    }
    std::string s = version + " " + std::to_string(status) + " (" + framing_name(framing) + ", " +
                    std::to_string(body_bytes) + " body bytes, " + (complete ? "complete" : "incomplete: " + error) +
                    ")";
    return s;
}

// ---- TLS --------------------------------------------------------------------------------------

namespace {
#ifdef CWSGI_CONFORMANCE_HAVE_TLS
SSL_CTX *g_tls_ctx = nullptr; // set once by set_client_tls, before any case runs; never freed
std::string g_tls_sni;

std::string ssl_errors()
{
    std::string s;
    for (unsigned long e; (e = ERR_get_error()) != 0;) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!s.empty()) s += "; ";
        s += buf;
    }
    return s.empty() ? "no OpenSSL error queued" : s;
}
#endif
} // namespace

bool set_client_tls(const TlsClientOptions &o, std::string *err)
{
#ifdef CWSGI_CONFORMANCE_HAVE_TLS
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        if (err) *err = "SSL_CTX_new: " + ssl_errors();
        return false;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
    if (!o.ca_file.empty()) {
        if (SSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr) != 1) {
            if (err) *err = "cannot load the CA file " + o.ca_file + ": " + ssl_errors();
            SSL_CTX_free(ctx);
            return false;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    }
    g_tls_ctx = ctx;
    g_tls_sni = o.sni;
    return true;
#else
    (void)o;
    if (err) *err = "cwsgi-conformance was built without OpenSSL (libssl-dev)";
    return false;
#endif
}

bool client_tls()
{
#ifdef CWSGI_CONFORMANCE_HAVE_TLS
    return g_tls_ctx != nullptr;
#else
    return false;
#endif
}

int Conn::wait_fd(short events, int timeout_ms)
{
    pollfd p{fd_, events, 0};
    int r;
    do {
        r = ::poll(&p, 1, std::max(0, timeout_ms));
    } while (r < 0 && errno == EINTR);
    return r;
}

bool Conn::handshake(int timeout_ms, std::string *err)
{
#ifdef CWSGI_CONFORMANCE_HAVE_TLS
    ssl_ = SSL_new(g_tls_ctx);
    if (!ssl_ || SSL_set_fd(ssl_, fd_) != 1) {
        if (err) *err = "SSL_new: " + ssl_errors();
        return false;
    }
    if (!g_tls_sni.empty()) SSL_set_tlsext_host_name(ssl_, g_tls_sni.c_str());
    if (SSL_CTX_get_verify_mode(g_tls_ctx) & SSL_VERIFY_PEER) {
        // The server is reached by its IP literal: the certificate must name that address.
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        char ip[INET6_ADDRSTRLEN] = {0};
        if (getpeername(fd_, reinterpret_cast<sockaddr *>(&ss), &len) == 0) {
            const void *a = ss.ss_family == AF_INET
                                ? static_cast<const void *>(&reinterpret_cast<sockaddr_in *>(&ss)->sin_addr)
                                : static_cast<const void *>(&reinterpret_cast<sockaddr_in6 *>(&ss)->sin6_addr);
            inet_ntop(ss.ss_family, a, ip, sizeof ip);
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), ip);
        }
    }
    auto t0 = clock::now();
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(ssl_);
        if (r == 1) break;
        int e = SSL_get_error(ssl_, r);
        int left = timeout_ms - static_cast<int>(ms_since(t0));
        if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && left > 0) {
            if (wait_fd(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, left) < 0) {
                if (err) *err = std::string("TLS handshake: poll: ") + strerror(errno);
                return false;
            }
            continue;
        }
        if (err) {
            if (left <= 0) {
                *err = "TLS handshake: timeout";
            } else {
                long v = SSL_get_verify_result(ssl_);
                *err = "TLS handshake: " + ssl_errors() +
                       (v != X509_V_OK ? std::string(" (certificate: ") + X509_verify_cert_error_string(v) + ")" : "");
            }
        }
        return false;
    }
    const unsigned char *proto = nullptr;
    unsigned plen = 0;
    SSL_get0_alpn_selected(ssl_, &proto, &plen);
    if (plen != 0 && std::string_view(reinterpret_cast<const char *>(proto), plen) != "http/1.1") {
        if (err)
            *err = "TLS handshake: ALPN chose '" + std::string(reinterpret_cast<const char *>(proto), plen) +
                   "', not http/1.1";
        return false;
    }
    return true;
#else
    (void)timeout_ms;
    if (err) *err = "built without OpenSSL";
    return false;
#endif
}

// ---------------------------------------------------------------------------------------------

Conn::~Conn() { close(); }

Conn::Conn(Conn &&o) noexcept : fd_(o.fd_), ssl_(o.ssl_), buf_(std::move(o.buf_)), pos_(o.pos_), eof_(o.eof_)
{
    o.fd_ = -1;
    o.ssl_ = nullptr;
}

Conn &Conn::operator=(Conn &&o) noexcept
{
    if (this != &o) {
        close();
        fd_ = o.fd_;
        ssl_ = o.ssl_;
        buf_ = std::move(o.buf_);
        pos_ = o.pos_;
        eof_ = o.eof_;
        o.fd_ = -1;
        o.ssl_ = nullptr;
    }
    return *this;
}

std::optional<Conn> Conn::open(const std::string &host, int port, int timeout_ms, std::string *err, int rcvbuf)
{
    sockaddr_storage ss{};
    socklen_t len = 0;
    std::string h = host;
    if (h.size() > 2 && h.front() == '[' && h.back() == ']') {
        h = h.substr(1, h.size() - 2);
    }
    auto *v4 = reinterpret_cast<sockaddr_in *>(&ss);
    auto *v6 = reinterpret_cast<sockaddr_in6 *>(&ss);
    if (inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(static_cast<uint16_t>(port));
        len = sizeof *v4;
    } else if (inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(static_cast<uint16_t>(port));
        len = sizeof *v6;
    } else {
        if (err) *err = "not an IP literal: " + host;
        return std::nullopt;
    }
    int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        if (err) *err = std::string("socket: ") + strerror(errno);
        return std::nullopt;
    }
    Conn c(fd);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (rcvbuf > 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    }
    if (::connect(fd, reinterpret_cast<sockaddr *>(&ss), len) != 0) {
        if (errno != EINPROGRESS) {
            if (err) *err = std::string("connect: ") + strerror(errno);
            return std::nullopt;
        }
        pollfd p{fd, POLLOUT, 0};
        int r = ::poll(&p, 1, timeout_ms);
        if (r <= 0) {
            if (err) *err = "connect: timeout";
            return std::nullopt;
        }
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr != 0) {
            if (err) *err = std::string("connect: ") + strerror(soerr);
            return std::nullopt;
        }
    }
    if (client_tls() && !c.handshake(timeout_ms, err)) return std::nullopt;
    return c;
}

bool Conn::send(std::string_view bytes, int timeout_ms)
{
    auto t0 = clock::now();
    size_t off = 0;
#ifdef CWSGI_CONFORMANCE_HAVE_TLS
    while (ssl_ && off < bytes.size()) {
        ERR_clear_error();
        int n = SSL_write(ssl_, bytes.data() + off, static_cast<int>(std::min<size_t>(bytes.size() - off, 1 << 20)));
        if (n > 0) {
            off += static_cast<size_t>(n);
            continue;
        }
        int e = SSL_get_error(ssl_, n);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return false;
        int left = timeout_ms - static_cast<int>(ms_since(t0));
        if (left <= 0 || wait_fd(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, left) <= 0) return false;
    }
    if (ssl_) return off == bytes.size();
#endif
    while (off < bytes.size()) {
        ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int left = timeout_ms - static_cast<int>(ms_since(t0));
            if (left <= 0) return false;
            pollfd p{fd_, POLLOUT, 0};
            if (::poll(&p, 1, left) <= 0) return false;
            continue;
        }
        return false;
    }
    return true;
}

int Conn::fill(int timeout_ms)
{
    if (eof_) return 0;
    if (fd_ < 0) return -2;
    if (pos_ > (1u << 20) && pos_ * 2 > buf_.size()) {
        buf_.erase(0, pos_);
        pos_ = 0;
    }
    char tmp[65536];
#ifdef CWSGI_CONFORMANCE_HAVE_TLS
    if (ssl_) {
        // A readable socket may hold only part of a record, or a record with no application
        // data (a session ticket): SSL_read then wants more, until the deadline.
        auto t0 = clock::now();
        for (;;) {
            ERR_clear_error();
            errno = 0;
            int n = SSL_read(ssl_, tmp, sizeof tmp);
            if (n > 0) {
                buf_.append(tmp, static_cast<size_t>(n));
                return 1;
            }
            int e = SSL_get_error(ssl_, n);
            if (e == SSL_ERROR_ZERO_RETURN) { // close_notify: the TLS end of the stream
                eof_ = true;
                return 0;
            }
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                int left = timeout_ms - static_cast<int>(ms_since(t0));
                if (left <= 0) return -1;
                int r = wait_fd(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, left);
                if (r == 0) return -1;
                if (r < 0) return -2;
                continue;
            }
            // A TCP FIN without close_notify (SSL_ERROR_SYSCALL with no errno, or OpenSSL 3's
            // "unexpected eof") ends the stream like a close, as does a reset.
            bool fin =
                (e == SSL_ERROR_SYSCALL && errno == 0) ||
                (e == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING);
            eof_ = true;
            return fin ? 0 : -2;
        }
    }
#endif
    int r = wait_fd(POLLIN, timeout_ms);
    if (r == 0) return -1;
    if (r < 0) return -2;
    ssize_t n;
    do {
        n = ::recv(fd_, tmp, sizeof tmp, 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        buf_.append(tmp, static_cast<size_t>(n));
        return 1;
    }
    if (n == 0) {
        eof_ = true;
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
    eof_ = true; // ECONNRESET and friends end the stream like a close
    return -2;
}

int Conn::read_line(std::string &line, int timeout_ms, size_t max_len)
{
    auto t0 = clock::now();
    for (;;) {
        size_t nl = buf_.find('\n', pos_);
        if (nl != std::string::npos) {
            size_t end = nl;
            if (end > pos_ && buf_[end - 1] == '\r') end--;
            line.assign(buf_, pos_, end - pos_);
            pos_ = nl + 1;
            return 1;
        }
        if (buf_.size() - pos_ > max_len) return -3;
        int left = timeout_ms - static_cast<int>(ms_since(t0));
        if (left <= 0) return -1;
        int r = fill(left);
        if (r <= 0 && r != -1) return r;
        if (r == -1) return -1;
    }
}

int Conn::ensure(size_t n, int timeout_ms)
{
    auto t0 = clock::now();
    while (buf_.size() - pos_ < n) {
        int left = timeout_ms - static_cast<int>(ms_since(t0));
        if (left <= 0) return -1;
        int r = fill(left);
        if (r != 1) return r;
    }
    return 1;
}

static std::string fill_error(int r)
{
    switch (r) {
    case 0: return "eof";
    case -1: return "timeout";
    case -2: return "reset";
    case -3: return "parse: line too long";
    default: return "error";
    }
}

bool Conn::read_interim(int timeout_ms, Interim *out, std::string *err)
{
    std::string line;
    int r = read_line(line, timeout_ms, 65536);
    if (r != 1) {
        if (err) *err = fill_error(r);
        return false;
    }
    if (line.size() < 12 || line.compare(0, 5, "HTTP/") != 0) {
        if (err) *err = "parse: status line '" + escape_bytes(line) + "'";
        return false;
    }
    out->status = std::atoi(line.c_str() + 9);
    out->headers.clear();
    for (int k = 0; k < 1000; k++) {
        r = read_line(line, timeout_ms, 65536);
        if (r != 1) {
            if (err) *err = fill_error(r);
            return false;
        }
        if (line.empty()) return true;
        size_t c = line.find(':');
        if (c == std::string::npos) {
            if (err) *err = "parse: header line '" + escape_bytes(line) + "'";
            return false;
        }
        out->headers.push_back({line.substr(0, c), trim_ows(std::string_view(line).substr(c + 1))});
    }
    if (err) *err = "parse: too many headers";
    return false;
}

bool Conn::parse_head(Response &r, const ReadOptions &opt, clock::time_point t0, bool &got_final)
{
    std::string line;
    auto left = [&]() { return std::min(opt.read_timeout_ms, opt.total_timeout_ms - static_cast<int>(ms_since(t0))); };
    int rc = read_line(line, left(), 65536);
    if (rc != 1) {
        r.error = fill_error(rc);
        return false;
    }
    if (r.ms_first_byte < 0) r.ms_first_byte = ms_since(t0);
    // status-line = HTTP-version SP status-code SP [ reason-phrase ]
    if (line.size() < 12 || line.compare(0, 5, "HTTP/") != 0 || line[8] != ' ') {
        r.error = "parse: status line '" + escape_bytes(line) + "'";
        return false;
    }
    std::string version = line.substr(0, 8);
    int status = std::atoi(line.c_str() + 9);
    std::string reason = line.size() > 13 ? line.substr(13) : "";
    std::vector<Field> fields;
    for (int k = 0;; k++) {
        if (k > 1000) {
            r.error = "parse: more than 1000 header lines";
            return false;
        }
        rc = read_line(line, left(), 65536);
        if (rc != 1) {
            r.error = fill_error(rc);
            return false;
        }
        if (line.empty()) break;
        size_t c = line.find(':');
        if (c == std::string::npos || c == 0) {
            r.error = "parse: header line '" + escape_bytes(line) + "'";
            return false;
        }
        fields.push_back({line.substr(0, c), trim_ows(std::string_view(line).substr(c + 1))});
    }
    if (status >= 100 && status < 200 && status != 101) {
        r.interim.push_back({status, std::move(fields)});
        got_final = false;
        return true;
    }
    r.version = version;
    r.status = status;
    r.reason = reason;
    r.headers = std::move(fields);
    r.ms_head = ms_since(t0);
    got_final = true;
    return true;
}

Response Conn::read_response(const ReadOptions &opt)
{
    Response r;
    auto t0 = clock::now();
    auto left = [&]() { return std::min(opt.read_timeout_ms, opt.total_timeout_ms - static_cast<int>(ms_since(t0))); };
    bool got_final = false;
    for (int k = 0; k < 20 && !got_final; k++) {
        if (!parse_head(r, opt, t0, got_final)) {
            return r;
        }
    }
    if (!got_final) {
        r.error = "parse: more than 20 interim responses";
        return r;
    }

    auto deliver = [&](const char *p, size_t n) -> bool {
        r.body_bytes += n;
        if (opt.store_body && r.body.size() < opt.max_store) {
            r.body.append(p, std::min(n, opt.max_store - r.body.size()));
        }
        if (opt.on_body && !opt.on_body(p, n)) {
            r.abandoned = true;
            return false;
        }
        return true;
    };

    // Framing, as RFC 9112 section 6.3 orders it.
    auto te = r.header("Transfer-Encoding");
    auto cl = r.header("Content-Length");
    if (opt.head || r.status == 204 || r.status == 304) {
        r.framing = Framing::none;
    } else if (te) {
        r.framing = Framing::chunked;
    } else if (cl) {
        r.framing = Framing::length;
    } else {
        r.framing = Framing::close;
    }
    if (r.framing == Framing::none) {
        r.complete = true;
        r.ms_done = ms_since(t0);
        return r;
    }
    if (r.framing == Framing::length) {
        char *end = nullptr;
        unsigned long long want = std::strtoull(cl->c_str(), &end, 10);
        if (cl->empty() || end == nullptr || *end != '\0') {
            r.error = "parse: Content-Length '" + *cl + "'";
            return r;
        }
        uint64_t got = 0;
        while (got < want) {
            if (pos_ == buf_.size()) {
                int rc = fill(left());
                if (rc != 1) {
                    r.error = fill_error(rc);
                    return r;
                }
            }
            size_t n = static_cast<size_t>(std::min<uint64_t>(buf_.size() - pos_, want - got));
            const char *p = buf_.data() + pos_;
            pos_ += n;
            got += n;
            if (!deliver(p, n)) return r;
        }
        r.complete = true;
        r.ms_done = ms_since(t0);
        return r;
    }
    if (r.framing == Framing::close) {
        for (;;) {
            if (pos_ < buf_.size()) {
                size_t n = buf_.size() - pos_;
                const char *p = buf_.data() + pos_;
                pos_ += n;
                if (!deliver(p, n)) return r;
            }
            int rc = fill(left());
            if (rc == 0) {
                r.complete = true;
                r.ms_done = ms_since(t0);
                return r;
            }
            if (rc != 1) {
                r.error = fill_error(rc);
                return r;
            }
        }
    }
    // chunked
    std::string line;
    for (int chunks = 0;; chunks++) {
        int rc = read_line(line, left(), 4096);
        if (rc != 1) {
            r.error = fill_error(rc);
            return r;
        }
        std::string size_part = line.substr(0, line.find(';'));
        size_part = trim_ows(size_part);
        char *end = nullptr;
        unsigned long long size = std::strtoull(size_part.c_str(), &end, 16);
        if (size_part.empty() || end == nullptr || *end != '\0') {
            r.error = "parse: chunk size line '" + escape_bytes(line) + "'";
            return r;
        }
        r.chunk_sizes.push_back(size);
        if (size == 0) {
            for (int k = 0;; k++) {
                rc = read_line(line, left(), 65536);
                if (rc != 1) {
                    r.error = fill_error(rc);
                    return r;
                }
                if (line.empty()) break;
                if (k > 1000) {
                    r.error = "parse: too many trailers";
                    return r;
                }
                size_t c = line.find(':');
                if (c == std::string::npos) {
                    r.error = "parse: trailer line '" + escape_bytes(line) + "'";
                    return r;
                }
                r.trailers.push_back({line.substr(0, c), trim_ows(std::string_view(line).substr(c + 1))});
            }
            r.complete = true;
            r.ms_done = ms_since(t0);
            return r;
        }
        uint64_t got = 0;
        while (got < size) {
            if (pos_ == buf_.size()) {
                rc = fill(left());
                if (rc != 1) {
                    r.error = fill_error(rc);
                    return r;
                }
            }
            size_t n = static_cast<size_t>(std::min<uint64_t>(buf_.size() - pos_, size - got));
            const char *p = buf_.data() + pos_;
            pos_ += n;
            got += n;
            if (!deliver(p, n)) return r;
        }
        rc = ensure(2, left());
        if (rc != 1) {
            r.error = fill_error(rc);
            return r;
        }
        if (buf_.compare(pos_, 2, "\r\n") != 0) {
            r.error = "parse: chunk data not followed by CRLF";
            return r;
        }
        pos_ += 2;
    }
}

bool Conn::data_within(int timeout_ms)
{
    if (pos_ < buf_.size()) return true;
    int r = fill(timeout_ms);
    return r == 1;
}

bool Conn::wait_closed(int timeout_ms, std::string *extra)
{
    auto t0 = clock::now();
    if (extra && pos_ < buf_.size()) {
        extra->append(buf_, pos_, std::string::npos);
    }
    pos_ = buf_.size();
    for (;;) {
        if (eof_) return true;
        int left = timeout_ms - static_cast<int>(ms_since(t0));
        if (left <= 0) return false;
        int r = fill(left);
        if (r == 0 || r == -2) return true;
        if (r == -1) return false;
        if (extra && extra->size() < (1u << 20)) extra->append(buf_, pos_, std::string::npos);
        pos_ = buf_.size();
    }
}

void Conn::shutdown_write()
{
#ifdef CWSGI_CONFORMANCE_HAVE_TLS
    if (ssl_) {
        ERR_clear_error();
        SSL_shutdown(ssl_); // sends close_notify; the peer's answer is read later, if it comes
    }
#endif
    if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void Conn::reset()
{
    if (fd_ >= 0) {
        linger l{1, 0};
        setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
#ifdef CWSGI_CONFORMANCE_HAVE_TLS
        if (ssl_) {
            SSL_set_quiet_shutdown(ssl_, 1); // an RST only, no close_notify
        }
#endif
        close();
    }
}

void Conn::close()
{
#ifdef CWSGI_CONFORMANCE_HAVE_TLS
    if (ssl_) {
        if (fd_ >= 0 && !(SSL_get_shutdown(ssl_) & SSL_SENT_SHUTDOWN)) {
            ERR_clear_error();
            SSL_shutdown(ssl_); // close_notify, best effort on the non-blocking socket
        }
        SSL_free(ssl_);
        ssl_ = nullptr;
        ERR_clear_error();
    }
#endif
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

int Conn::local_port() const
{
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (fd_ < 0 || getsockname(fd_, reinterpret_cast<sockaddr *>(&ss), &len) != 0) return -1;
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in *>(&ss)->sin_port);
    return ntohs(reinterpret_cast<sockaddr_in6 *>(&ss)->sin6_port);
}

} // namespace conf
