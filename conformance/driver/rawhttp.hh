// rawhttp.hh: a raw-socket HTTP/1.x client for the conformance driver.
//
// HTTP libraries hide exactly what the suite must see: informational (1xx) responses, chunk
// boundaries, trailers, header order and case, and whether a body ended by its framing or was
// cut. This client sends the exact bytes it is given and parses what comes back without
// normalising anything. Every read waits at most a timeout, and every response read is also
// bounded in total time, so no case can hang on a server that stays silent.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct ssl_st;

namespace conf {

struct Field {
    std::string name;
    std::string value;
};

/// An interim (1xx) response seen before the final one.
struct Interim {
    int status = 0;
    std::vector<Field> headers;
};

/// How a response body was delimited on the wire.
enum class Framing { none, length, chunked, close };
const char *framing_name(Framing f);

/// One response as it arrived.
struct Response {
    std::string version; // "HTTP/1.1"
    int status = 0;      // 0: no status line arrived
    std::string reason;
    std::vector<Field> headers; // in order, names as sent
    std::vector<Interim> interim;
    Framing framing = Framing::none;
    std::string body;                  // decoded body bytes (unless not stored)
    uint64_t body_bytes = 0;           // decoded body bytes seen, stored or not
    std::vector<uint64_t> chunk_sizes; // chunked: size of every chunk, terminal 0 included
    std::vector<Field> trailers;
    bool complete = false;     // the framing reached its end (or a close ended a close-delimited body)
    bool abandoned = false;    // the on_body callback asked to stop
    std::string error;         // "", "timeout", "eof", "parse: ..." (why it is not complete)
    double ms_first_byte = -1; // since the read began
    double ms_head = -1;
    double ms_done = -1;

    /// The first header named `name` (ASCII case-insensitive), or nullopt.
    std::optional<std::string> header(std::string_view name) const;
    /// Every value of `name`, in order.
    std::vector<std::string> headers_named(std::string_view name) const;
    bool has_token(std::string_view header_name, std::string_view token) const;
    /// A one-line summary for failure messages: "HTTP/1.1 200 (chunked, 12 bytes, complete)".
    std::string summary() const;
};

struct ReadOptions {
    bool head = false;            // the request was HEAD: a final response has no body
    int read_timeout_ms = 5000;   // longest wait for any single read
    int total_timeout_ms = 30000; // longest time for the whole response
    bool store_body = true;
    size_t max_store = size_t(256) << 20;
    /// Called with every decoded body slice; return false to stop reading (abandoned).
    std::function<bool(const char *, size_t)> on_body;
};

/// TLS for the raw client (cwsgi-conformance --tls): once set_client_tls() succeeded, every
/// Conn::open() runs a TLS handshake (ALPN "http/1.1", SNI `sni`) after the TCP connect, and
/// every byte a case sends or reads goes through it, so no case needs to know.
struct TlsClientOptions {
    std::string ca_file;           // verify the server's chain and its IP/name against this; "" = no verification
    std::string sni = "localhost"; // server name sent (an IP literal is not a valid SNI name)
};
/// Turns TLS on for every later Conn::open(). False (and *err) when OpenSSL cannot set it up
/// (an unreadable CA file) or the driver was built without OpenSSL.
bool set_client_tls(const TlsClientOptions &o, std::string *err);
/// True once set_client_tls() succeeded.
bool client_tls();

bool iequals(std::string_view a, std::string_view b);
/// Printable form of request/response bytes for diagnostics: \r \n \xHH, cut at `max` bytes.
std::string escape_bytes(std::string_view s, size_t max = 400);

class Conn {
public:
    Conn() = default;
    ~Conn();
    Conn(Conn &&o) noexcept;
    Conn &operator=(Conn &&o) noexcept;
    Conn(const Conn &) = delete;
    Conn &operator=(const Conn &) = delete;

    /// Connects to host:port (IPv4 or IPv6 literal). rcvbuf > 0 shrinks SO_RCVBUF first, so
    /// that a slow reader makes the server feel backpressure quickly.
    static std::optional<Conn> open(const std::string &host, int port, int timeout_ms, std::string *err,
                                    int rcvbuf = 0);

    /// Sends all bytes, waiting at most timeout_ms for the socket to take them. False on error.
    bool send(std::string_view bytes, int timeout_ms = 10000);
    /// Reads one response (1xx ones are collected into Response::interim first).
    Response read_response(const ReadOptions &opt);
    /// Reads only a status line and headers of the next message, which may be a 1xx.
    /// Returns false on timeout/eof. Used to see a "100 Continue" alone.
    bool read_interim(int timeout_ms, Interim *out, std::string *err);
    /// True when some byte (buffered or new) is available within timeout_ms.
    bool data_within(int timeout_ms);
    /// Waits for the peer to close; true when EOF (or a reset) comes within timeout_ms.
    /// Bytes that arrive meanwhile are appended to *extra.
    bool wait_closed(int timeout_ms, std::string *extra = nullptr);
    /// Ends the sending side: shutdown(SHUT_WR). Over TLS a close_notify alert goes first (the
    /// TLS end of the request stream), then the TCP FIN; reading goes on either way.
    void shutdown_write();
    /// Closes with an RST (SO_LINGER 0), the harshest client disconnect.
    void reset();
    /// Closes the connection (over TLS after a close_notify, sent without waiting for the peer's).
    void close();
    bool is_open() const { return fd_ >= 0; }
    /// True when the connection runs over TLS.
    bool tls() const { return ssl_ != nullptr; }
    int local_port() const;
    /// Bytes already received but not consumed.
    size_t buffered() const { return buf_.size() - pos_; }

private:
    explicit Conn(int fd) : fd_(fd) {}
    /// The TLS handshake on the connected socket; false (and *err) when it fails or times out.
    bool handshake(int timeout_ms, std::string *err);
    /// Waits for the socket to be readable (events POLLIN) or writable (POLLOUT): >0 ready, 0
    /// timeout, <0 error.
    int wait_fd(short events, int timeout_ms);
    /// Reads more bytes: 1 got some, 0 EOF, -1 timeout, -2 error (reset).
    int fill(int timeout_ms);
    /// Reads a CRLF- (or LF-) terminated line, without the terminator.
    int read_line(std::string &line, int timeout_ms, size_t max_len);
    int ensure(size_t n, int timeout_ms);
    bool parse_head(Response &r, const ReadOptions &opt, std::chrono::steady_clock::time_point t0, bool &got_final);

    int fd_ = -1;
    ssl_st *ssl_ = nullptr; // OpenSSL's SSL, when the connection runs over TLS
    std::string buf_;
    size_t pos_ = 0;
    bool eof_ = false;
};

} // namespace conf
