// exchange.hh: the boundary between the shared core and one adapter, for one request.
//
// An adapter (microhttpd, h2o, forking, the in-process test host) implements Exchange: it moves
// bytes and events for one request/stream and nothing else. The core's Request (request.hh)
// owns every decision: the state machine, header validation, framing, errors, 100-continue
// timing, limits, logging. An adapter never decides what goes on the wire; it only carries out
// what commit()/send_body()/end_body()/abort_body() say, the same way on every adapter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "http.hh"

namespace cwsgi::core {

/// The final response head, as the core decided it: validated app headers plus the framing
/// headers the core added (Content-Length when known, Connection: close when !keep_alive).
/// No Transfer-Encoding header is included: an adapter whose framing is `chunked` frames the
/// body itself (or lets its library do it) and adds that header.
/// Ownership: the reason and every header view live in the request's arena (or are static)
/// and stay valid until the Request is destroyed, so an adapter may keep the ResponseHead
/// (not only use it during commit) as long as it keeps the Request. Each name and value is
/// NUL-terminated, so `name.data()` can go to a C library as it is.
struct ResponseHead {
    uint32_t status = 200;
    std::string_view reason;
    std::span<const Field> headers;
    FramingDecision framing;
};

/// One request's transport, implemented by an adapter. Every call except disconnected() comes
/// from the thread running the request (the app thread); calls never overlap.
class Exchange {
public:
    virtual ~Exchange() = default;

    /// Called once, before the first read_body, when the request carries Expect: 100-continue
    /// and nothing has been committed: the adapter now lets "100 Continue" go out (lazily,
    /// INPUT-EXPECT-1). Adapters whose library sends it by itself make this a no-op.
    virtual void continue_body() {}

    /// Reads decoded request-body bytes (chunked framing removed), blocking until at least one
    /// byte is there, the body ends or an error happens. Returns the count, 0 at the end, or a
    /// negative CWSGI status (CWSGI_E_BODY, CWSGI_E_DISCONNECTED, CWSGI_E_TIMEOUT). The core
    /// never calls it again after 0 or an error, and enforces the body limit itself.
    virtual int64_t read_body(void *buf, size_t cap) = 0;

    /// Request trailers once read_body returned 0, or nullptr when the adapter has none.
    virtual const std::vector<Header> *request_trailers() { return nullptr; }

    /// Sends an informational response (1xx). Return CWSGI_DROPPED when the adapter cannot.
    virtual int32_t send_informational(uint32_t status, const std::vector<Header> &headers)
    {
        (void)status;
        (void)headers;
        return 1; // CWSGI_DROPPED
    }

    /// Puts the response head on the wire (or hands it to the library). Called once.
    virtual int32_t commit(const ResponseHead &head) = 0;

    /// Sends body bytes, blocking while the adapter's bounded buffer is full (backpressure).
    /// Never called for Framing::no_body. Returns CWSGI_OK, CWSGI_E_DISCONNECTED or CWSGI_E_IO.
    virtual int32_t send_body(const void *data, size_t len) = 0;

    /// Sends a file range zero-copy. Return CWSGI_E_UNSUPPORTED to make the core fall back to a
    /// read loop through send_body. `fd` is borrowed for this call only: dup() it if needed.
    virtual int32_t send_file(int fd, int64_t offset, int64_t count)
    {
        (void)fd;
        (void)offset;
        (void)count;
        return -10; // CWSGI_E_UNSUPPORTED
    }

    /// Ends the body normally (terminal chunk, END_STREAM). Called once, after commit.
    virtual int32_t end_body() = 0;

    /// Cuts the response after commit so the client can tell it is incomplete (RESP-ERR-2):
    /// close without the terminal chunk / before Content-Length bytes, or RST_STREAM.
    virtual void abort_body() = 0;

    /// True once the client is known to be gone. Any thread.
    virtual bool disconnected() const = 0;

    /// Whether the response head went out (or was handed to the engine, which sends it first):
    /// false when the adapter committed it but had to close the connection before it could
    /// send it. The access log then records no status (LOG-ACCESS-1: "-"), so that it never
    /// claims a response that was not sent. Called once, when the request ends.
    virtual bool response_sent() const { return true; }

    /// The app's wait_fd (THR-6), arguments already checked by the core: waits until `fd` is
    /// ready for `events` (CWSGI_WAIT_*) or `timeout_ms` (-1: no limit) passed. Returns the
    /// ready events, CWSGI_E_TIMEOUT or CWSGI_E_SHUTDOWN. The default polls on the calling
    /// thread (poll_fd); an adapter that runs fibers lets the request's fiber yield instead.
    virtual int32_t wait_fd(int fd, uint32_t events, int32_t timeout_ms);
};

/// Polls `fd` for `events` (CWSGI_WAIT_*) on the calling thread for up to `timeout_ms` (-1: no
/// limit), and also `wake_fd` when it is >= 0: once that becomes readable the wait ends with
/// CWSGI_E_SHUTDOWN. An error or hang-up on `fd` reports every requested event. Returns the
/// ready events, CWSGI_E_TIMEOUT, CWSGI_E_SHUTDOWN or CWSGI_E_INVAL (POLLNVAL). Threads: any.
int32_t poll_fd(int fd, uint32_t events, int32_t timeout_ms, int wake_fd);

} // namespace cwsgi::core
