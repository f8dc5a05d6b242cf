// request.hh: the per-request state machine every adapter shares (RESP-STATE-*).
//
// A Request is what the app's cwsgi_request* points to. It builds the environ, runs the app's
// handle(), and enforces the spec on every call the app makes: order of calls, header rules,
// Content-Length accounting, HEAD/204/304, lazy 100-continue, the body limit, what happens
// when the app fails before or after commit. Misuse returns a status code and is logged with
// the rule it breaks; it never corrupts memory. The adapter only supplies an Exchange.
//
// Lifecycle, driven by the adapter:
//   auto req = Request::create(ctx, head, check, exchange);
//   req->run();                 // app thread: handle(), then implicit finish or error answer
//   req->complete(outcome);     // any thread, once the response left (or failed on) the wire
// on_request_end and the access-log line run exactly once, after both run() and complete()
// have happened, whichever comes last (LIFE-END-1).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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
};

namespace cwsgi::core {

class Context;

/// A bump allocator: blocks are freed together when the request ends (MEM-ARENA-1).
class Arena {
public:
    void *alloc(size_t size);
    size_t bytes() const { return used_; }

private:
    std::vector<std::unique_ptr<unsigned char[]>> blocks_;
    size_t left_ = 0;
    unsigned char *next_ = nullptr;
    size_t used_ = 0;
};

class Request : public std::enable_shared_from_this<Request> {
public:
    /// States of the response (spec/response.md RESP-STATE-2).
    enum class State : uint8_t { fresh, started, committed, finished };

    /// Creates a request for a head that validate_request_head() accepted.
    static std::shared_ptr<Request> create(Context &ctx, RequestHead head, HeadCheck check,
                                           Exchange &exchange);
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
    int32_t start_response(uint32_t status, const char *reason, const cwsgi_header *headers,
                           size_t n, uint32_t flags);
    int32_t write(const void *data, size_t len);
    int32_t send_file(int fd, int64_t offset, int64_t count);
    int32_t finish();
    int32_t send_informational(uint32_t status, const cwsgi_header *headers, size_t n);
    int32_t is_disconnected() const;
    int32_t wait_fd(int fd, uint32_t events, int32_t timeout_ms);
    void *alloc(size_t size) { return arena_.alloc(size); }
    void set_user_data(void *p) { user_data_ = p; }
    void *get_user_data() const { return user_data_; }
    int32_t trailer_at(size_t index, cwsgi_str *name, cwsgi_str *value);

    /// Logs a misuse of the API with the rule it breaks; returns `code`.
    int32_t misuse(int32_t code, const char *rule, const std::string &what);

private:
    Request(Context &ctx, RequestHead head, HeadCheck check, Exchange &exchange);
    void build_paths();
    void build_environ();
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

    // Request facts (decoded once).
    std::vector<Header> headers_lc_;  // lowercased names
    std::string raw_path_, query_, script_name_, path_info_;
    std::string server_name_, server_port_, scheme_, protocol_;
    std::string content_type_, content_length_text_;
    bool environ_built_ = false;
    std::vector<std::pair<std::string, std::string>> environ_;
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
    std::string reason_;
    std::vector<Header> resp_headers_;
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
    Arena arena_;
    bool reached_app_ = false;
    int32_t handle_result_ = 0;
};

/// Logs a request the server refused before the app (error log at INFO, access log line).
void log_rejected(Context &ctx, const RequestHead &head, const HeadCheck &check,
                  uint64_t body_bytes_sent);

} // namespace cwsgi::core
