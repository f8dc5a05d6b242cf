// request.hh: the per-request state machine every adapter shares (RESP-STATE-*).
//
// A Request is what the app's cwsgi_request* points to. It builds the environ, runs the app's
// handle(), and enforces the spec on every call the app makes: order of calls, header rules,
// Content-Length accounting, HEAD/204/304, lazy 100-continue, the body limit, what happens
// when the app fails before or after commit. Misuse returns a status code and is logged with
// the rule it breaks; it never corrupts memory. The adapter only supplies an Exchange.
//
// Lifecycle, driven by the adapter:
//   RequestPtr req = Request::create(ctx, std::move(head), check, exchange);
//   req->run();                 // app thread: handle(), then implicit finish or error answer
//   req->complete(outcome);     // any thread, once the response left (or failed on) the wire
//   req.reset();                // the adapter's last use: the arena goes back to the pool
// on_request_end and the access-log line run exactly once, after both run() and complete()
// have happened, whichever comes last (LIFE-END-1).
//
// Memory: the Request lives in its own arena (the head's, taken over by create), and every
// string it hands out (environ, headers, response head) is a NUL-terminated view into that
// arena or into static memory. On the hello path nothing is allocated from the heap.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "arena.hh"
#include "cwsgi.h"
#include "exchange.hh"
#include "http.hh"

namespace cwsgi::core {
class Request;
}

/// The opaque handle of cwsgi.h: a slot that points at its live Request. Slots are never
/// freed, only reused after many other requests (see HandlePool in request.cc), so a handle
/// kept past its request finds a null pointer and the call returns CWSGI_E_INVAL instead of
/// touching freed memory (RESP-STATE-1).
struct cwsgi_request {
    std::atomic<cwsgi::core::Request *> self{nullptr};
    cwsgi_request *next_free = nullptr; // the pool's FIFO link while the slot waits for reuse
};

namespace cwsgi::core {

class Context;

/// Destroys a Request and gives its arena (which holds the Request itself) back.
struct RequestDeleter {
    void operator()(Request *r) const;
};
/// The adapter's handle on a request: one owner, no reference count.
using RequestPtr = std::unique_ptr<Request, RequestDeleter>;

class Request {
public:
    /// States of the response (spec/response.md RESP-STATE-2).
    enum class State : uint8_t { fresh, started, committed, finished };

    /// Creates a request for a head that validate_request_head() accepted, with the `check`
    /// it returned. The request takes the head's arena over and is placed in it, so the
    /// head's views stay valid and nothing is copied again. Returns nullptr only when the
    /// arena cannot get its first block (out of memory); the adapter then answers 500.
    /// Ownership: the adapter owns the RequestPtr and keeps the Exchange alive as long.
    /// Threads: any; the request is then used as run() and complete() say.
    static RequestPtr create(Context &ctx, RequestHead head, const HeadCheck &check, Exchange &exchange);
    ~Request();
    Request(const Request &) = delete;
    Request &operator=(const Request &) = delete;

    /// Runs the app and ends the response at the exchange level (end_body, abort_body or the
    /// server's own 4xx/500 answer). Call once, on the thread that may block.
    void run();

    /// Reports that the response has left the wire (CWSGI_OK) or failed there
    /// (CWSGI_E_DISCONNECTED, CWSGI_E_IO). Call once, from any thread.
    void complete(int32_t wire_outcome);

    /// The handle from the app's point of view, and back (nullptr when `r` is not live).
    cwsgi_request *handle() { return slot_; }
    static Request *from(cwsgi_request *r);

    // Facts adapters and tests read after run().
    State state() const { return state_; }
    uint32_t status() const { return sent_status_; }
    uint64_t body_bytes_sent() const { return body_sent_; }
    /// Whether the connection may carry another request after this one.
    bool keep_alive() const { return keep_alive_; }
    /// The outcome handed to on_request_end (valid after both run() and complete()).
    int32_t outcome() const { return outcome_; }
    const RequestHead &head() const { return head_; }
    const HeadCheck &check() const { return check_; }
    uint64_t id() const { return id_; }
    bool body_fully_read() const { return body_eof_; }
    /// Whether handle() was called (false when the server answered by itself, e.g. 404).
    bool reached_app() const { return reached_app_; }
    /// What handle() returned (0 when it was not called).
    int32_t handle_result() const { return handle_result_; }

    // ---- the API table's operations (validated; return CWSGI status codes) ----
    int32_t environ_get(const char *key, cwsgi_str *out);
    int32_t environ_at(size_t index, cwsgi_str *key, cwsgi_str *value);
    int32_t header_at(size_t index, cwsgi_str *name, cwsgi_str *value);
    int32_t header_find(const char *name, size_t nth, cwsgi_str *value);
    int32_t request_info(cwsgi_request_info *info);
    int64_t read(void *buf, size_t cap);
    int32_t start_response(uint32_t status, const char *reason, const cwsgi_header *headers, size_t n, uint32_t flags);
    int32_t write(const void *data, size_t len);
    int32_t send_file(int fd, int64_t offset, int64_t count);
    int32_t finish();
    int32_t send_informational(uint32_t status, const cwsgi_header *headers, size_t n);
    int32_t is_disconnected() const;
    int32_t wait_fd(int fd, uint32_t events, int32_t timeout_ms);
    void *alloc(size_t size) { return head_.arena.alloc(size); }
    void set_user_data(void *p) { user_data_ = p; }
    void *get_user_data() const { return user_data_; }
    int32_t trailer_at(size_t index, cwsgi_str *name, cwsgi_str *value);

    /// Logs a misuse of the API with the rule it breaks; returns `code`.
    int32_t misuse(int32_t code, const char *rule, std::string_view what);

private:
    friend struct RequestDeleter;
    Request(Context &ctx, RequestHead &&head, const HeadCheck &check, Exchange &exchange);
    bool build_facts();
    void build_environ();
    std::string_view keep_terminated(std::string_view s);
    std::string_view request_id_text();
    std::string_view content_length_text();
    bool http_environ(std::string_view key, std::string_view &value);
    int32_t commit(bool finishing);
    void answer_error(uint32_t status);
    void fail_after_commit(const char *why);
    void end_once();

    Context &ctx_;
    cwsgi_request *slot_;
    RequestHead head_;
    HeadCheck check_;
    Exchange &ex_;
    uint64_t id_ = 0;
    int64_t start_us_ = 0;

    // Request facts: NUL-terminated views into the arena or static memory (ABI-TYPE-2).
    FieldList headers_; // what header_at shows (ENV-HDR-1); names lowercase
    std::string_view raw_path_, query_, script_name_, path_info_;
    std::string_view server_name_, server_port_, scheme_, protocol_;
    std::string_view id_text_, length_text_; // made on first use
    bool environ_built_ = false;
    FieldList environ_; // the whole environ, built only for environ_at
    std::vector<Header> trailers_lc_;

    // Input.
    bool body_started_ = false;
    bool body_eof_ = false;
    int32_t body_error_ = 0;
    uint32_t body_error_status_ = 0; // 413/400 answered instead of 500 when the app gives up
    int64_t body_read_ = 0;

    // Response.
    State state_ = State::fresh;
    uint32_t status_ = 0;
    std::string_view reason_;
    FieldList resp_headers_; // the app's, validated, plus room for the two the core adds
    std::optional<int64_t> app_length_;
    FramingDecision framing_;
    uint64_t body_written_ = 0; // bytes the app gave (counted for HEAD too)
    uint64_t body_sent_ = 0;    // bytes that went to the exchange
    uint32_t sent_status_ = 0;
    bool keep_alive_ = true;
    bool aborted_ = false;
    bool handle_failed_ = false;

    // Ending.
    std::atomic<int> end_votes_{0};
    int32_t wire_outcome_ = 0;
    int32_t outcome_ = 0;
    void *user_data_ = nullptr;
    bool reached_app_ = false;
    int32_t handle_result_ = 0;
    int probe_token_ = -1; // the worker probe's record of this request (probe.hh)
};

/// Logs a request the server refused before the app (error log at INFO, access log line).
void log_rejected(Context &ctx, const RequestHead &head, const HeadCheck &check, uint64_t body_bytes_sent);

} // namespace cwsgi::core
