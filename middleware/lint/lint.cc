// lint.cc: cwsgi-lint, the validating middleware (spec/composition.md, COMP-LINT-*).
//
// Loaded as the app (cwsgi-serve --lint app.so, or by hand with CWSGI_INNER_APP), it loads the
// real app and checks both directions of every call, as wsgiref.validate and Rack::Lint do:
// what the app asks of the server (a per-request state machine over start_response, write,
// send_file, finish and read; the arguments of those and of wait_fd and log; handles used only
// while live and from the request's own thread) and what the server hands the app
// (request_info and the environ, which must agree, the request headers, read's results, the
// results of send calls after a disconnect, on_request_end exactly once and after handle, one
// callback at a time for a serial app). docs/composition.md lists every check with its rule.
// Each finding is one log line:
//
//   cwsgi-lint: RULE: what happened; expected what the rule says [METHOD TARGET request N]
//
// Modes (CWSGI_LINT=warn|fail, COMP-LINT-2): warn logs and forwards every call unchanged; fail
// also refuses the offending call and every later response call of that request and makes
// handle fail, so the server answers 500 when nothing was committed (RESP-ERR-1) and cuts the
// response otherwise. When nothing is wrong, every call is forwarded as made (COMP-LINT-3): a
// send_file stays a send_file, and the app's cooperative flag and thread-safety are the lint's.
// Counts per rule are logged when a worker stops and when the app is destroyed (COMP-LINT-4).
//
// Cooperative requests (the app declares CWSGI_APP_COOPERATIVE and the server runs it on
// fibers) are also timed between the calls that may suspend a fiber (COMP-LINT-7/8): where the
// app gets control back lint reads the wall clock and the thread's time on the CPU and on the
// runqueue (/proc/thread-self/schedstat); where it gives control away, the wall clock again, and
// schedstat only when the stretch is long enough to matter. Wall time that was neither on the
// CPU nor waiting for it is time the thread slept outside a CWSGI call, which stalls every
// fiber of the loop.
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "../middleware.hh"

namespace {

using std::string_view;

// Every rule the lint can report: the spec ID it cites and whose call broke it, the app's or
// the server's. Counts are kept per entry.
#define LINT_RULES(X)                          \
    X(START_STATUS, "RESP-START-1", "app")     \
    X(START_TWICE, "RESP-START-4", "app")      \
    X(HDR_NAME, "RESP-HDR-1", "app")           \
    X(HDR_VALUE, "RESP-HDR-2", "app")          \
    X(HDR_HOP, "RESP-HDR-3", "app")            \
    X(AFTER_COMMIT, "RESP-STATE-2", "app")     \
    X(AFTER_FINISH, "RESP-STATE-3", "app")     \
    X(BEFORE_START, "RESP-BODY-1", "app")      \
    X(LEN_OVER, "RESP-LEN-2", "app")           \
    X(LEN_UNDER, "RESP-LEN-3", "app")          \
    X(NOBODY_BODY, "RESP-NOBODY-1", "app")     \
    X(NOBODY_CL, "RESP-NOBODY-2", "app")       \
    X(INFO_STATE, "RESP-INFO-1", "app")        \
    X(INFO_STATUS, "RESP-INFO-2", "app")       \
    X(READ_PAST, "COMP-LINT-5", "app")         \
    X(START_REASON, "RESP-START-3", "app")     \
    X(START_ARGS, "RESP-START-5", "app")       \
    X(WRITE_ARGS, "RESP-BODY-1", "app")        \
    X(FILE_ARGS, "RESP-FILE-3", "app")         \
    X(READ_ARGS, "INPUT-READ-1", "app")        \
    X(WAIT_ARGS, "THR-6", "app")               \
    X(TRAILERS_EARLY, "EXT-TRAILERS-1", "app") \
    X(LOG_ARGS, "LOG-ERR-1", "app")            \
    X(DEAD_HANDLE, "LIFE-END-3", "app")        \
    X(NULL_HANDLE, "RESP-STATE-1", "app")      \
    X(OTHER_THREAD, "THR-2", "app")            \
    X(COOP_SLEEP, "COMP-LINT-7", "app")        \
    X(COOP_BUSY, "COMP-LINT-8", "app")         \
    X(SRV_READ, "INPUT-READ-3", "server")      \
    X(SRV_EOF, "INPUT-READ-2", "server")       \
    X(SRV_ENV, "ENV-KEYS-3", "server")         \
    X(SRV_PATH, "ENV-PATH-2", "server")        \
    X(SRV_INFO, "ENV-INFO-1", "server")        \
    X(SRV_HDR, "ENV-HDR-1", "server")          \
    X(SRV_END, "LIFE-END-1", "server")         \
    X(SRV_SERIAL, "THR-1", "server")           \
    X(SRV_DISC, "LIFE-DISC-2", "server")       \
    X(SRV_MATCH, "ENV-INFO-2", "server")       \
    X(SRV_HOST, "ENV-KEYS-5", "server")        \
    X(SRV_RAW, "ENV-PATH-3", "server")         \
    X(SRV_FIND, "ENV-HDR-2", "server")

enum Rule {
#define LINT_ENUM(name, id, side) name,
    LINT_RULES(LINT_ENUM)
#undef LINT_ENUM
        kRules
};
const char *const kRuleIds[] = {
#define LINT_ID(name, id, side) id,
    LINT_RULES(LINT_ID)
#undef LINT_ID
};
const char *const kRuleSides[] = {
#define LINT_SIDE(name, id, side) side,
    LINT_RULES(LINT_SIDE)
#undef LINT_SIDE
};

enum class State : uint8_t { fresh, started, committed, finished };

// A thread's clocks at one cooperative-call boundary (COMP-LINT-7/8), in nanoseconds.
struct Clocks {
    int64_t wall = 0; // CLOCK_MONOTONIC
    int64_t cpu = 0;  // schedstat's first field: time on the CPU
    int64_t runq = 0; // schedstat's second field: time spent runnable, waiting for a CPU
    const void *thread = nullptr;
};

// One request's bookkeeping, in the request arena (so it needs no free).
struct Req {
    void *app_user = nullptr; // the inner app's user-data slot (MEM-USER-1)
    State state = State::fresh;
    bool failed = false;                        // fail mode: a finding refused this request
    bool head = false;                          // HEAD: the server discards the body, so no length checks
    bool eof = false;                           // read returned 0
    bool read_past = false;                     // READ_PAST reported already (once per request)
    bool gone = false;                          // a send call returned CWSGI_E_DISCONNECTED (LIFE-DISC-2)
    bool coop = false;                          // a cooperative request: time its stretches between calls
    bool slept = false;                         // COOP_SLEEP reported already (once per request)
    bool busy = false;                          // COOP_BUSY reported already (once per request)
    std::atomic<bool> in_handle{false};         // handle is running (LIFE-END-1)
    std::atomic<const void *> context{nullptr}; // the thread running handle or on_request_end (THR-2)
    uint32_t ends = 0;                          // on_request_end calls seen
    uint32_t status = 0;                        // the status of the last accepted start_response
    int64_t declared = -1;                      // the app's Content-Length, or -1
    int64_t sent = 0;                           // body bytes written or sent as files
    int64_t body_len = -1;                      // request content_length as request_info gave it
    int64_t body_read = 0;                      // bytes read so far
    Clocks mark;                                // the clocks when the app last got control back (coop only)
    const char *mark_at = "";                   // where that was: "handle's start", "the return of write", ...
};

cwsgi::mw::Inner inner;
const cwsgi_server_api *server;
cwsgi_server_api table; // what the inner app sees
cwsgi_app_desc desc;
bool fail_mode = false;
int64_t coop_sleep_ns = 20'000'000; // CWSGI_LINT_COOP_SLEEP_MS (COMP-LINT-7); 0: off
int64_t coop_busy_ns = 500'000'000; // CWSGI_LINT_COOP_BUSY_MS (COMP-LINT-8); 0: off
int64_t coop_min_ns = 20'000'000;   // the smaller enabled threshold: shorter stretches are fine
std::atomic<int> coop_exec{-1};     // the server runs handle on fibers: -1 not asked yet, 0, 1
std::atomic<uint64_t> counts[kRules];
std::atomic<uint64_t> handled{0}, ended{0};
std::atomic<int> running{0}; // handle and on_request_end calls in progress (THR-1)
bool summarised = false;

// The live requests: a handle is live from lint's handle until its on_request_end returns.
// Lint finds a request's state here rather than through the handle, so a call with a dead
// handle (LIFE-END-3) is seen without touching the freed request. Sharded by address so that
// the threads of a pool seldom share a lock.
struct Shard {
    std::mutex mu;
    std::unordered_map<const cwsgi_request *, Req *> live;
};
Shard shards[16];

Shard &shard_of(const cwsgi_request *req) { return shards[(reinterpret_cast<uintptr_t>(req) >> 6) % 16]; }

// Finds `req`'s state: true with *st set (nullptr when lint runs it unchecked for want of
// arena memory) for a live handle, false for a handle lint does not know or that has ended.
bool find(const cwsgi_request *req, Req **st)
{
    Shard &s = shard_of(req);
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.live.find(req);
    if (it == s.live.end()) return false;
    *st = it->second;
    return true;
}

// The identity of the calling thread (fibers of one loop share it): the address of a
// thread-local, cheaper than gettid.
thread_local char thread_tag;

// The calling thread's /proc/thread-self/schedstat, opened once per thread and re-read with
// pread (the kernel regenerates it on every read at offset 0).
struct SchedStat {
    int fd = -2; // -2: not opened yet; -1: unavailable (no CONFIG_SCHED_INFO, no /proc)
    ~SchedStat()
    {
        if (fd >= 0) ::close(fd);
    }
};
thread_local SchedStat schedstat;

int64_t wall_now()
{
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts); // vDSO: no system call
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Reads the calling thread's schedstat into `c` (one pread, about 1 us); false when the kernel
// does not offer it. Its on-CPU field lags the thread's exact CPU clock by at most a tick
// (1.6 ms seen on a loaded machine), well below the thresholds, so the exact clock's extra
// system call is not worth it.
bool read_sched(Clocks &c)
{
    if (schedstat.fd == -2) schedstat.fd = ::open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    if (schedstat.fd < 0) return false;
    char buf[96];
    ssize_t n = ::pread(schedstat.fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return false;
    buf[n] = '\0';
    char *end = nullptr;
    c.cpu = static_cast<int64_t>(std::strtoull(buf, &end, 10));
    c.runq = static_cast<int64_t>(std::strtoull(end, nullptr, 10));
    c.thread = &thread_tag;
    return true;
}

// CWSGI_LINT_REPORT=PATH: every finding and summary line is also appended to PATH (one write
// each, O_APPEND, so the lines of several workers never interleave), for tools that check a
// run's findings without reading the server's log (the conformance runs under lint).
void emit(cwsgi_request *req, uint32_t level, const std::string &line)
{
    server->log(req, level, line.data(), line.size());
    const char *path = std::getenv("CWSGI_LINT_REPORT");
    if (path == nullptr || *path == '\0') return;
    int fd = ::open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    std::string l = line + "\n";
    ssize_t n = ::write(fd, l.data(), l.size());
    (void)n; // best effort: the log has the line already
    ::close(fd);
}

// Logs one finding for `req` (NULL: not about one live request) and counts it (COMP-LINT-1).
// `st` is the request's state when the finding may fail the request (fail mode, COMP-LINT-2),
// NULL for findings that never do (SHOULD rules, the server's, the timing heuristics).
void report(cwsgi_request *req, Req *st, Rule rule, const std::string &what, const std::string &expected)
{
    counts[rule].fetch_add(1, std::memory_order_relaxed);
    std::string where;
    if (req != nullptr) {
        cwsgi_request_info info{};
        info.struct_size = sizeof info;
        if (server->request_info(req, &info) == CWSGI_OK) {
            where = " [" + std::string(info.method.ptr, info.method.len) + " " +
                    std::string(info.target.ptr, info.target.len) + " request " + std::to_string(info.request_id) + "]";
        }
    }
    std::string line = std::string("cwsgi-lint: ") + kRuleIds[rule] + " (" + kRuleSides[rule] + "): " + what +
                       "; expected " + expected + where;
    emit(req, CWSGI_LOG_WARNING, line);
    if (fail_mode && st != nullptr) st->failed = true;
}

void summary(const char *when)
{
    uint64_t total = 0, app = 0;
    std::string parts;
    for (int r = 0; r < kRules; ++r) {
        uint64_t n = counts[r].load();
        if (n == 0) continue;
        total += n;
        if (std::strcmp(kRuleSides[r], "app") == 0) app += n;
        parts += std::string(parts.empty() ? "" : ", ") + kRuleIds[r] + " x" + std::to_string(n);
    }
    std::string line = "cwsgi-lint: summary (" + std::string(when) + "): " + std::to_string(total) + " findings, app " +
                       std::to_string(app) + ", server " + std::to_string(total - app) +
                       (parts.empty() ? "" : " (" + parts + ")") + ", " + std::to_string(handled.load()) + " requests";
    emit(nullptr, total ? CWSGI_LOG_WARNING : CWSGI_LOG_INFO, line);
}

std::string ms(int64_t ns) { return std::to_string(ns / 1'000'000) + "." + std::to_string(ns / 100'000 % 10) + " ms"; }

// A cooperative boundary where the app gets control back: handle's start, a suspending
// call's return, on_request_end's start.
void coop_mark(Req *st, const char *at)
{
    if (!st->coop) return;
    if (!read_sched(st->mark)) st->coop = false; // no schedstat: the check is off
    st->mark.wall = wall_now();
    st->mark_at = at;
}

// A cooperative boundary where the app gives control away (a suspending call, handle's or
// on_request_end's return): the stretch since coop_mark ran outside every CWSGI call, so the
// thread's time off the CPU and off the runqueue in it is time the app blocked the loop
// (THR-5, COMP-LINT-7), and its CPU time a stretch in which no other fiber could run
// (COMP-LINT-8). Reported once per request each; they never fail a request.
void coop_check(cwsgi_request *req, Req *st, const char *at)
{
    if (!st->coop) return;
    Clocks now;
    now.wall = wall_now();
    int64_t wall = now.wall - st->mark.wall;
    if (wall < coop_min_ns) return; // too short to reach either threshold: no schedstat read
    if (!read_sched(now) || now.thread != st->mark.thread) return; // a fiber that moved: no span
    int64_t cpu = now.cpu - st->mark.cpu, runq = now.runq - st->mark.runq;
    int64_t off = wall - cpu - runq;
    std::string span = std::string(" between ") + st->mark_at + " and " + at;
    if (coop_sleep_ns > 0 && off >= coop_sleep_ns && !st->slept) {
        st->slept = true;
        report(req, nullptr, COOP_SLEEP,
               "a cooperative handle blocked outside CWSGI calls for " + ms(off) + " (off the CPU and not runnable)" +
                   span,
               "blocking only inside read, write, send_file, finish and wait_fd (THR-5; threshold " +
                   ms(coop_sleep_ns) + ", CWSGI_LINT_COOP_SLEEP_MS)");
    }
    if (coop_busy_ns > 0 && cpu >= coop_busy_ns && !st->busy) {
        st->busy = true;
        report(req, nullptr, COOP_BUSY,
               "a cooperative handle ran " + ms(cpu) + " on the CPU without a CWSGI call" + span,
               "a suspending call at least every " + ms(coop_busy_ns) +
                   " of CPU, or threads mode for CPU-bound work (CWSGI_LINT_COOP_BUSY_MS)");
    }
}

// Whether the server runs handle on fibers (LIFE-INFO-2), asked once.
bool server_cooperative()
{
    int v = coop_exec.load(std::memory_order_relaxed);
    if (v < 0) {
        cwsgi_server_info si{};
        si.struct_size = sizeof si;
        v = server->server_info != nullptr && server->server_info(&si) == CWSGI_OK &&
                    si.struct_size > offsetof(cwsgi_server_info, execution) && si.execution == CWSGI_EXEC_COOPERATIVE
                ? 1
                : 0;
        coop_exec.store(v, std::memory_order_relaxed);
    }
    return v == 1;
}

// The common entry of every wrapped call that takes a request handle: finds its state and
// checks the handle is live (LIFE-END-3) and used from its own execution context (THR-2).
// Returns false for a NULL or dead handle: the caller forwards the call (warn mode: the server
// answers CWSGI_E_INVAL, RESP-STATE-1) or refuses it (fail mode).
bool enter(cwsgi_request *req, Req **st, const char *call, bool any_thread = false)
{
    *st = nullptr;
    if (req == nullptr) {
        report(nullptr, nullptr, NULL_HANDLE, std::string(call) + " with a NULL request handle",
               "a live request handle");
        return false;
    }
    if (!find(req, st)) {
        char addr[32];
        std::snprintf(addr, sizeof addr, "%p", static_cast<void *>(req));
        report(nullptr, nullptr, DEAD_HANDLE,
               std::string(call) + " with request handle " + addr + ", which is not live (its on_request_end " +
                   "returned, or it never was a request)",
               "no call with a handle after its on_request_end returned");
        return false;
    }
    if (*st != nullptr && !any_thread) {
        const void *ctx = (*st)->context.load(std::memory_order_relaxed);
        if (ctx != nullptr && ctx != &thread_tag) {
            report(req, *st, OTHER_THREAD, std::string(call) + " from a thread that is not running the request",
                   "calls with a handle only from the thread or fiber running its handle or on_request_end "
                   "(is_disconnected and log excepted)");
        }
    }
    return true;
}

bool is_tchar(unsigned char c) { return std::isalnum(c) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr; }

bool iequal(string_view a, string_view b)
{
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
            return false;
        }
    }
    return true;
}

bool has_ctl(string_view v) { return v.find_first_of(string_view("\r\n\0", 3)) != string_view::npos; }

// Checks one start_response call; records the declared Content-Length. Returns false when a
// finding was made.
bool check_headers(cwsgi_request *req, Req *st, uint32_t status, const cwsgi_header *h, size_t n, bool final)
{
    bool ok = true;
    if (final && (status < 200 || status > 599)) {
        report(req, st, START_STATUS, "start_response status " + std::to_string(status), "200 to 599");
        ok = false;
    }
    if (h == nullptr && n > 0) {
        report(req, st, START_ARGS, "NULL headers with n = " + std::to_string(n), "an array of n fields");
        return false;
    }
    static const char *const kHop[] = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                                       "te",         "trailer",    "upgrade",          "status"};
    for (size_t i = 0; i < n; ++i) {
        if ((h[i].name == nullptr && h[i].name_len > 0) || (h[i].value == nullptr && h[i].value_len > 0)) {
            report(req, st, START_ARGS, "header " + std::to_string(i) + " has a NULL pointer with a length",
                   "non-NULL name and value pointers");
            ok = false;
            continue;
        }
        string_view name(h[i].name ? h[i].name : "", h[i].name ? h[i].name_len : 0);
        string_view value(h[i].value ? h[i].value : "", h[i].value ? h[i].value_len : 0);
        bool token = !name.empty();
        for (unsigned char c : name) token = token && is_tchar(c);
        if (!token) {
            report(req, st, HDR_NAME, "header name '" + std::string(name) + "' is not a token", "an RFC 9110 token");
            ok = false;
            continue;
        }
        if (has_ctl(value)) {
            report(req, st, HDR_VALUE, "header '" + std::string(name) + "' has CR, LF or NUL in its value",
                   "a value without CR, LF or NUL");
            ok = false;
        }
        for (const char *hop : kHop) {
            if (iequal(name, hop)) {
                report(req, st, HDR_HOP, "header '" + std::string(name) + "' is hop-by-hop or server-owned",
                       "the server to own the connection and framing fields");
                ok = false;
            }
        }
        if (final && status == 204 && iequal(name, "content-length")) {
            report(req, st, NOBODY_CL, "a 204 response with a Content-Length field", "no Content-Length on a 204");
            ok = false;
        }
        if (final && iequal(name, "content-length")) {
            char *end = nullptr;
            std::string v(value);
            long long cl = std::strtoll(v.c_str(), &end, 10);
            if (!v.empty() && end && *end == '\0' && cl >= 0) st->declared = cl;
        }
    }
    return ok;
}

// --- the server's table, wrapped ------------------------------------------------------------

void lint_set_user_data(cwsgi_request *req, void *data)
{
    Req *st;
    if (!enter(req, &st, "set_user_data")) return;
    if (st != nullptr) st->app_user = data;
}

void *lint_get_user_data(cwsgi_request *req)
{
    Req *st;
    if (!enter(req, &st, "get_user_data")) return nullptr; // RESP-STATE-1: NULL for a dead handle
    return st ? st->app_user : nullptr;
}

int32_t lint_start_response(cwsgi_request *req, uint32_t status, const char *reason, const cwsgi_header *h, size_t n,
                            uint32_t flags)
{
    Req *st;
    if (!enter(req, &st, "start_response")) {
        return fail_mode ? CWSGI_E_APP : server->start_response(req, status, reason, h, n, flags);
    }
    if (st == nullptr) return server->start_response(req, status, reason, h, n, flags);
    if (st->failed) return CWSGI_E_APP;
    bool ok = true;
    if (st->state == State::committed) {
        report(req, st, AFTER_COMMIT, "start_response after the response was committed",
               "no status or header change once the first body byte or finish went out");
        ok = false;
    } else if (st->state == State::finished) {
        report(req, st, AFTER_FINISH, "start_response after finish", "only environ, header, info, log and alloc calls");
        ok = false;
    } else if (st->state == State::started && (flags & CWSGI_RESPONSE_REPLACE) == 0) {
        report(req, st, START_TWICE, "a second start_response without CWSGI_RESPONSE_REPLACE",
               "the REPLACE flag (WSGI's exc_info) on every call after the first");
        ok = false;
    }
    if ((flags & ~CWSGI_RESPONSE_REPLACE) != 0) {
        report(req, st, START_ARGS, "start_response flags " + std::to_string(flags),
               "no bit other than CWSGI_RESPONSE_REPLACE");
        ok = false;
    }
    if (reason != nullptr && std::strpbrk(reason, "\r\n") != nullptr) {
        report(req, st, START_REASON, "a reason phrase with CR or LF", "a reason without CR, LF or NUL, or NULL");
        ok = false;
    }
    int64_t declared = st->declared;
    st->declared = -1;
    ok = check_headers(req, st, status, h, n, true) && ok;
    if (!ok && fail_mode) {
        st->declared = declared;
        return CWSGI_E_APP;
    }
    int32_t rc = server->start_response(req, status, reason, h, n, flags);
    if (rc == CWSGI_OK) {
        st->state = State::started;
        st->status = status;
    } else {
        st->declared = declared;
    }
    return rc;
}

// Shared by write and send_file: the state and length checks of one body call of `len` bytes.
bool check_body(cwsgi_request *req, Req *st, int64_t len, const char *call)
{
    if (st->state == State::fresh) {
        report(req, st, BEFORE_START, std::string(call) + " before start_response", "start_response first");
        return false;
    }
    if (st->state == State::finished) {
        report(req, st, AFTER_FINISH, std::string(call) + " after finish",
               "only environ, header, info, log and alloc calls");
        return false;
    }
    if ((st->status == 204 || st->status == 304) && len > 0) {
        report(req, st, NOBODY_BODY,
               std::string(call) + " of " + std::to_string(len) + " bytes in a " + std::to_string(st->status) +
                   " response",
               "no body bytes in a 204 or 304 response");
        return false;
    }
    if (!st->head && st->declared >= 0 && st->sent + len > st->declared) {
        report(req, st, LEN_OVER, std::string(call) + " takes the body to " + std::to_string(st->sent + len) + " bytes",
               "at most the declared Content-Length of " + std::to_string(st->declared));
        return false;
    }
    return true;
}

// What a send call's result says about the server (LIFE-DISC-2): once one returned
// CWSGI_E_DISCONNECTED, none may succeed again.
void check_sent(cwsgi_request *req, Req *st, int32_t rc, const char *call)
{
    if (rc == CWSGI_E_DISCONNECTED) st->gone = true;
    if (rc == CWSGI_OK && st->gone) {
        report(req, nullptr, SRV_DISC,
               std::string(call) + " returned CWSGI_OK after a send call said the client is gone",
               "CWSGI_E_DISCONNECTED at once for every later write, send_file and finish");
        st->gone = false; // once per disconnect
    }
}

int32_t lint_write(cwsgi_request *req, const void *data, size_t len)
{
    Req *st;
    if (!enter(req, &st, "write")) return fail_mode ? CWSGI_E_APP : server->write(req, data, len);
    if (st == nullptr) return server->write(req, data, len);
    coop_check(req, st, "the call of write");
    if (st->failed) return CWSGI_E_APP;
    bool ok = true;
    if (data == nullptr && len > 0) {
        report(req, st, WRITE_ARGS, "write of " + std::to_string(len) + " bytes from NULL", "data for len > 0");
        ok = false;
    }
    ok = check_body(req, st, static_cast<int64_t>(len), "write") && ok;
    if (!ok && fail_mode) return CWSGI_E_APP;
    int32_t rc = server->write(req, data, len);
    if (rc == CWSGI_OK) {
        st->sent += static_cast<int64_t>(len);
        st->state = State::committed;
    }
    check_sent(req, st, rc, "write");
    coop_mark(st, "the return of write");
    return rc;
}

// The RESP-FILE-3 argument rules, checked as the server will, so that the app learns which.
bool check_file(cwsgi_request *req, Req *st, int fd, int64_t offset, int64_t count, int64_t *len)
{
    struct stat sb {};
    std::string bad;
    if (::fstat(fd, &sb) != 0) {
        bad = "descriptor " + std::to_string(fd) + " is not open";
    } else if (offset < 0 || count < -1) {
        bad = "offset " + std::to_string(offset) + ", count " + std::to_string(count);
    } else if (count == -1 && !S_ISREG(sb.st_mode)) {
        bad = "count -1 on a descriptor that is not a regular file";
    } else if (S_ISREG(sb.st_mode) && count >= 0 && offset + count > sb.st_size) {
        bad = "the range " + std::to_string(offset) + "+" + std::to_string(count) + " passes the end of a file of " +
              std::to_string(sb.st_size) + " bytes";
    }
    if (!bad.empty()) {
        report(req, st, FILE_ARGS, "send_file: " + bad,
               "an open descriptor, offset >= 0, count >= -1, -1 only on a regular file, a range inside the file");
        *len = 0;
        return false;
    }
    *len = count >= 0 ? count : (sb.st_size > offset ? sb.st_size - offset : 0);
    return true;
}

int32_t lint_send_file(cwsgi_request *req, int fd, int64_t offset, int64_t count)
{
    Req *st;
    if (!enter(req, &st, "send_file")) return fail_mode ? CWSGI_E_APP : server->send_file(req, fd, offset, count);
    if (st == nullptr) return server->send_file(req, fd, offset, count);
    coop_check(req, st, "the call of send_file");
    if (st->failed) return CWSGI_E_APP;
    int64_t len = 0;
    bool ok = check_file(req, st, fd, offset, count, &len);
    ok = (!ok || check_body(req, st, len, "send_file")) && ok;
    if (!ok && fail_mode) return CWSGI_E_APP;
    int32_t rc = server->send_file(req, fd, offset, count); // forwarded as made: zero-copy stays
    if (rc == CWSGI_OK) {
        st->sent += len;
        st->state = State::committed;
    }
    check_sent(req, st, rc, "send_file");
    coop_mark(st, "the return of send_file");
    return rc;
}

// The finish checks, for an explicit finish and for the one a CWSGI_OK return implies.
bool check_finish(cwsgi_request *req, Req *st, const char *how)
{
    if (st->state == State::finished) {
        report(req, st, AFTER_FINISH, std::string(how) + " after finish", "finish exactly once");
        return false;
    }
    if (st->state == State::fresh) {
        report(req, st, BEFORE_START, std::string(how) + " before start_response", "start_response first");
        return false;
    }
    // A 304's Content-Length describes the representation a 200 would have sent (RESP-NOBODY-2).
    if (!st->head && st->status != 304 && st->declared >= 0 && st->sent < st->declared) {
        report(req, st, LEN_UNDER, std::string(how) + " after " + std::to_string(st->sent) + " body bytes",
               "the declared Content-Length of " + std::to_string(st->declared));
        return false;
    }
    return true;
}

int32_t lint_send_informational(cwsgi_request *req, uint32_t status, const cwsgi_header *h, size_t n)
{
    Req *st;
    if (!enter(req, &st, "send_informational")) {
        return fail_mode ? CWSGI_E_APP : server->send_informational(req, status, h, n);
    }
    if (st == nullptr) return server->send_informational(req, status, h, n);
    if (st->failed) return CWSGI_E_APP;
    bool ok = true;
    if (st->state != State::fresh) {
        report(req, st, INFO_STATE, "send_informational after start_response", "1xx responses before the final one");
        ok = false;
    }
    if (status < 102 || status > 199) {
        report(req, st, INFO_STATUS, "send_informational status " + std::to_string(status),
               "102 to 199 (100 is the server's, 101 switches protocols)");
        ok = false;
    }
    ok = check_headers(req, st, status, h, n, false) && ok;
    if (!ok && fail_mode) return CWSGI_E_APP;
    return server->send_informational(req, status, h, n);
}

int32_t lint_finish(cwsgi_request *req)
{
    Req *st;
    if (!enter(req, &st, "finish")) return fail_mode ? CWSGI_E_APP : server->finish(req);
    if (st == nullptr) return server->finish(req);
    coop_check(req, st, "the call of finish");
    if (st->failed) return CWSGI_E_APP;
    if (!check_finish(req, st, "finish") && fail_mode) return CWSGI_E_APP;
    int32_t rc = server->finish(req);
    if (rc == CWSGI_OK || rc == CWSGI_E_LENGTH) st->state = State::finished;
    check_sent(req, st, rc, "finish");
    coop_mark(st, "the return of finish");
    return rc;
}

int64_t lint_read(cwsgi_request *req, void *buf, size_t cap)
{
    Req *st;
    if (!enter(req, &st, "read")) return fail_mode ? int64_t{CWSGI_E_APP} : server->read(req, buf, cap);
    if (st == nullptr) return server->read(req, buf, cap);
    coop_check(req, st, "the call of read");
    if (buf == nullptr || cap == 0) {
        report(req, st, READ_ARGS, std::string("read with ") + (buf ? "cap 0" : "a NULL buffer"),
               "a buffer of at least one byte");
        if (fail_mode) return CWSGI_E_APP;
    } else if (st->state == State::finished) {
        report(req, st, AFTER_FINISH, "read after finish", "only environ, header, info, log and alloc calls");
        if (fail_mode) return CWSGI_E_APP;
    }
    if (st->eof && !st->read_past) {
        st->read_past = true;
        report(req, nullptr, READ_PAST, "read called again after it returned 0 (the end of the body)",
               "no read past the end of the body");
    }
    int64_t n = server->read(req, buf, cap);
    if (n > 0 && static_cast<uint64_t>(n) > cap) {
        report(req, nullptr, SRV_READ,
               "read returned " + std::to_string(n) + " bytes for a buffer of " + std::to_string(cap),
               "at most cap bytes");
    }
    if (n > 0 && st->eof) {
        report(req, nullptr, SRV_EOF, "read returned bytes after it had returned 0", "0 for ever after the end");
    }
    if (n > 0) {
        st->body_read += n;
        if (st->body_len >= 0 && st->body_read > st->body_len) {
            report(req, nullptr, SRV_READ, "read returned " + std::to_string(st->body_read) + " bytes in all",
                   "exactly the content_length of " + std::to_string(st->body_len));
        }
    }
    if (n == 0 && !st->eof && st->body_len >= 0 && st->body_read < st->body_len) {
        report(req, nullptr, SRV_READ,
               "read returned 0 after " + std::to_string(st->body_read) + " of " + std::to_string(st->body_len) +
                   " bytes",
               "the whole Content-Length, or CWSGI_E_BODY for a body cut short (INPUT-READ-4)");
    }
    if (n == 0) st->eof = true;
    coop_mark(st, "the return of read");
    return n;
}

int32_t lint_wait_fd(cwsgi_request *req, int fd, uint32_t events, int32_t timeout_ms)
{
    Req *st;
    if (!enter(req, &st, "wait_fd")) return fail_mode ? CWSGI_E_APP : server->wait_fd(req, fd, events, timeout_ms);
    if (st == nullptr) return server->wait_fd(req, fd, events, timeout_ms);
    coop_check(req, st, "the call of wait_fd");
    const uint32_t known = CWSGI_WAIT_READ | CWSGI_WAIT_WRITE;
    bool args = fd >= -1 && timeout_ms >= -1 && (events & ~known) == 0 && (events != 0 || fd == -1);
    if (!args) {
        report(req, st, WAIT_ARGS,
               "wait_fd(fd " + std::to_string(fd) + ", events " + std::to_string(events) + ", timeout " +
                   std::to_string(timeout_ms) + ")",
               "fd >= -1, READ and/or WRITE (0 only with fd -1), a timeout >= -1");
        if (fail_mode) return CWSGI_E_APP;
    }
    int32_t rc = server->wait_fd(req, fd, events, timeout_ms);
    coop_mark(st, "the return of wait_fd");
    return rc;
}

int32_t lint_log(cwsgi_request *req, uint32_t level, const char *msg, size_t len)
{
    Req *st = nullptr;
    if (req != nullptr && !enter(req, &st, "log", true))
        return fail_mode ? CWSGI_E_APP : server->log(req, level, msg, len);
    if (level < CWSGI_LOG_DEBUG || level > CWSGI_LOG_CRITICAL || (msg == nullptr && len > 0)) {
        report(req, nullptr, LOG_ARGS,
               "log at level " + std::to_string(level) + (msg == nullptr && len > 0 ? " with a NULL message" : ""),
               "a level of 10 to 50 and a message for len > 0");
    }
    return server->log(req, level, msg, len);
}

// The request-trailers extension (EXT-TRAILERS-1), wrapped like the table: the app gets lint's
// copy of the server's, whose trailer_at checks that the body has ended.
const cwsgi_ext_request_trailers *server_trailers;
cwsgi_ext_request_trailers lint_trailers;
std::once_flag trailers_once;

int32_t lint_trailer_at(cwsgi_request *req, size_t index, cwsgi_str *name, cwsgi_str *value)
{
    Req *st;
    if (!enter(req, &st, "trailer_at")) {
        return fail_mode ? CWSGI_E_APP : server_trailers->trailer_at(req, index, name, value);
    }
    if (st != nullptr && !st->eof) {
        report(req, st, TRAILERS_EARLY, "trailer_at before read returned 0",
               "request trailers only once the body has ended");
        if (fail_mode) return CWSGI_E_APP;
    }
    return server_trailers->trailer_at(req, index, name, value);
}

const void *lint_get_extension(const char *name, uint32_t min_version)
{
    const void *ext = server->get_extension(name, min_version);
    if (ext == nullptr || name == nullptr || std::strcmp(name, CWSGI_EXT_REQUEST_TRAILERS) != 0) return ext;
    std::call_once(trailers_once, [ext] {
        server_trailers = static_cast<const cwsgi_ext_request_trailers *>(ext);
        size_t n = std::min<size_t>(server_trailers->struct_size, sizeof lint_trailers);
        std::memcpy(&lint_trailers, server_trailers, n);
        if (n > offsetof(cwsgi_ext_request_trailers, trailer_at)) lint_trailers.trailer_at = lint_trailer_at;
    });
    return &lint_trailers;
}

// --- what the server hands the app, checked when handle starts -------------------------------

bool nul_terminated(const cwsgi_str &s) { return s.ptr != nullptr && s.ptr[s.len] == '\0'; }

string_view view(const cwsgi_str &s) { return string_view(s.ptr, s.len); }

// SERVER_NAME is an RFC 3986 host: a reg-name or IPv4 address, or an IP literal in brackets.
bool valid_host(string_view h)
{
    if (h.empty()) return false;
    if (h.front() == '[')
        return h.back() == ']' && h.find_first_not_of("0123456789abcdefABCDEF:.[]v") == string_view::npos;
    for (unsigned char c : h) {
        if (!std::isalnum(c) && std::strchr("-._~!$&'()*+,;=%", c) == nullptr) return false;
    }
    return true;
}

// The environ keys that mirror a request_info string (ENV-INFO-2); all are "always" keys.
struct Mirror {
    const char *key;
    cwsgi_str cwsgi_request_info::*field;
};
const Mirror kMirrors[] = {
    {"REQUEST_METHOD", &cwsgi_request_info::method},       {"REQUEST_URI", &cwsgi_request_info::target},
    {"cwsgi.raw_path", &cwsgi_request_info::raw_path},     {"SCRIPT_NAME", &cwsgi_request_info::script_name},
    {"PATH_INFO", &cwsgi_request_info::path_info},         {"QUERY_STRING", &cwsgi_request_info::query_string},
    {"cwsgi.url_scheme", &cwsgi_request_info::scheme},     {"SERVER_PROTOCOL", &cwsgi_request_info::protocol},
    {"SERVER_NAME", &cwsgi_request_info::server_name},     {"SERVER_PORT", &cwsgi_request_info::server_port},
    {"REMOTE_ADDR", &cwsgi_request_info::remote_addr},     {"REMOTE_PORT", &cwsgi_request_info::remote_port},
    {"cwsgi.local_addr", &cwsgi_request_info::local_addr}, {"cwsgi.local_port", &cwsgi_request_info::local_port},
};

// The environ, checked against request_info and the header list (ENV-KEYS-3, ENV-INFO-2).
void check_environ(cwsgi_request *req, const cwsgi_request_info &info)
{
    for (const Mirror &m : kMirrors) {
        cwsgi_str v{};
        if (server->environ_get(req, m.key, &v) != CWSGI_OK || !nul_terminated(v)) {
            report(req, nullptr, SRV_ENV, std::string("environ key ") + m.key + " is missing",
                   "every key the spec marks \"always\"");
        } else if (view(v) != view(info.*m.field)) {
            report(req, nullptr, SRV_MATCH,
                   std::string("environ ") + m.key + " is '" + std::string(view(v)) + "' but request_info says '" +
                       std::string(view(info.*m.field)) + "'",
                   "the same bytes in both views");
        }
    }
    for (const char *key : {"cwsgi.request_id", "cwsgi.version"}) {
        cwsgi_str v{};
        if (server->environ_get(req, key, &v) != CWSGI_OK || !nul_terminated(v)) {
            report(req, nullptr, SRV_ENV, std::string("environ key ") + key + " is missing",
                   "every key the spec marks \"always\"");
        } else if (std::strcmp(key, "cwsgi.request_id") == 0 && view(v) != std::to_string(info.request_id)) {
            report(req, nullptr, SRV_MATCH,
                   "environ cwsgi.request_id is '" + std::string(view(v)) + "' but request_info says " +
                       std::to_string(info.request_id),
                   "the same number in both views");
        }
    }
    // CONTENT_LENGTH exists exactly when the request has a Content-Length field, with its
    // value, which request_info's content_length also holds.
    cwsgi_str field{}, env{};
    bool has_field = server->header_find(req, "content-length", 0, &field) == CWSGI_OK;
    bool has_env = server->environ_get(req, "CONTENT_LENGTH", &env) == CWSGI_OK;
    if (has_field != has_env || (has_field && view(field) != view(env))) {
        report(req, nullptr, SRV_ENV,
               std::string("CONTENT_LENGTH ") + (has_env ? "'" + std::string(view(env)) + "'" : "absent") +
                   " for a Content-Length field " + (has_field ? "'" + std::string(view(field)) + "'" : "absent"),
               "CONTENT_LENGTH only for a Content-Length field, with its value");
    } else if (has_field && view(field) != std::to_string(info.content_length)) {
        report(req, nullptr, SRV_MATCH,
               "request_info content_length " + std::to_string(info.content_length) + " for Content-Length '" +
                   std::string(view(field)) + "'",
               "the Content-Length value");
    }
}

void check_request(cwsgi_request *req, Req *st)
{
    cwsgi_request_info info{};
    info.struct_size = sizeof info;
    if (server->request_info(req, &info) != CWSGI_OK) {
        report(req, nullptr, SRV_INFO, "request_info failed", "CWSGI_OK for a live request");
        return;
    }
    const cwsgi_str *strs[] = {&info.method,       &info.target, &info.raw_path, &info.script_name, &info.path_info,
                               &info.query_string, &info.scheme, &info.protocol, &info.server_name, &info.server_port};
    for (const cwsgi_str *s : strs) {
        if (!nul_terminated(*s)) {
            report(req, nullptr, SRV_INFO, "a request_info string is NULL or not NUL-terminated",
                   "ptr[len] == 0 and ptr never NULL");
            return;
        }
    }
    st->body_len = info.content_length;
    st->head = view(info.method) == "HEAD";
    bool token = info.method.len > 0;
    for (size_t i = 0; i < info.method.len; ++i)
        token = token && is_tchar(static_cast<unsigned char>(info.method.ptr[i]));
    string_view scheme = view(info.scheme), proto = view(info.protocol);
    if (!token || (scheme != "http" && scheme != "https") ||
        (proto != "HTTP/1.0" && proto != "HTTP/1.1" && proto != "HTTP/2") || info.content_length < -1) {
        report(req, nullptr, SRV_INFO,
               "request_info method '" + std::string(info.method.ptr) + "', scheme '" + std::string(scheme) +
                   "', protocol '" + std::string(proto) + "', content_length " + std::to_string(info.content_length),
               "a token method, http or https, HTTP/1.0, HTTP/1.1 or HTTP/2, and a length of -1 or more");
    }
    string_view sn = view(info.script_name), pi = view(info.path_info);
    bool sn_ok = sn.empty() || (sn.front() == '/' && sn.back() != '/');
    bool pi_ok = (!pi.empty() && pi.front() == '/') || (pi.empty() && !sn.empty()) ||
                 (pi == "*" && view(info.method) == "OPTIONS") || view(info.method) == "CONNECT";
    if (!sn_ok || !pi_ok) {
        report(req, nullptr, SRV_PATH, "SCRIPT_NAME '" + std::string(sn) + "' and PATH_INFO '" + std::string(pi) + "'",
               "SCRIPT_NAME empty or '/x' without a trailing '/', PATH_INFO starting with '/'");
    }
    if (view(info.raw_path).find('#') != string_view::npos || view(info.query_string).find('#') != string_view::npos) {
        report(req, nullptr, SRV_RAW,
               "cwsgi.raw_path '" + std::string(view(info.raw_path)) + "' or QUERY_STRING '" +
                   std::string(view(info.query_string)) + "' holds a '#'",
               "no fragment in either");
    }
    string_view port = view(info.server_port);
    if (!valid_host(view(info.server_name)) || port.empty() ||
        port.find_first_not_of("0123456789") != string_view::npos) {
        report(req, nullptr, SRV_HOST,
               "SERVER_NAME '" + std::string(view(info.server_name)) + "', SERVER_PORT '" + std::string(port) + "'",
               "an RFC 3986 host and a port of decimal digits, neither empty");
    }
    for (size_t i = 0;; ++i) {
        cwsgi_str name{}, value{};
        if (server->header_at(req, i, &name, &value) != CWSGI_OK) break;
        bool ok = nul_terminated(name) && nul_terminated(value) && name.len > 0;
        for (size_t k = 0; ok && k < name.len; ++k) {
            unsigned char c = static_cast<unsigned char>(name.ptr[k]);
            ok = is_tchar(c) && !(c >= 'A' && c <= 'Z');
        }
        ok = ok && !has_ctl(view(value));
        if (!ok) {
            report(req, nullptr, SRV_HDR,
                   "request header " + std::to_string(i) + " ('" + std::string(name.ptr ? name.ptr : "") +
                       "') is not a lowercase token with a value free of CR, LF and NUL",
                   "names lowercased, values as received without CR, LF or NUL");
            break;
        }
        if (i == 0) {
            // header_find agrees with header_at: its first match for the first name is field 0.
            cwsgi_str found{};
            std::string upper(name.ptr, name.len);
            for (char &c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            if (server->header_find(req, upper.c_str(), 0, &found) != CWSGI_OK || view(found) != view(value)) {
                report(req, nullptr, SRV_FIND, "header_find('" + upper + "', 0) differs from header_at(0)",
                       "the first field of that name, matched case-insensitively");
            }
        }
    }
    check_environ(req, info);
}

// --- the descriptor the server sees ----------------------------------------------------------

// Serial apps get one request callback at a time (THR-1): counted around handle and
// on_request_end.
struct Running {
    explicit Running(cwsgi_request *req)
    {
        if (running.fetch_add(1, std::memory_order_acq_rel) > 0 && desc.thread_safety == CWSGI_THREADS_SERIAL) {
            report(req, nullptr, SRV_SERIAL, "two request callbacks of a CWSGI_THREADS_SERIAL app at once",
                   "one handle or on_request_end at a time in a process");
        }
    }
    ~Running() { running.fetch_sub(1, std::memory_order_acq_rel); }
    Running(const Running &) = delete;
    Running &operator=(const Running &) = delete;
};

int32_t lint_handle(void *, cwsgi_request *req)
{
    handled.fetch_add(1, std::memory_order_relaxed);
    Req *st = cwsgi::mw::arena_new<Req>(server, req); // NULL: no arena, run unchecked
    {
        Shard &s = shard_of(req);
        std::lock_guard<std::mutex> lock(s.mu);
        s.live[req] = st;
    }
    if (st == nullptr) return inner.desc.handle(inner.state, req);
    Running running_now(req);
    st->in_handle.store(true, std::memory_order_release);
    st->context.store(&thread_tag, std::memory_order_relaxed);
    st->coop =
        (desc.flags & CWSGI_APP_COOPERATIVE) != 0 && (coop_sleep_ns > 0 || coop_busy_ns > 0) && server_cooperative();
    check_request(req, st);
    coop_mark(st, "handle's start");
    int32_t rc = inner.desc.handle(inner.state, req);
    coop_check(req, st, "handle's return");
    st->in_handle.store(false, std::memory_order_release);
    if (rc == CWSGI_OK && !st->failed && st->state != State::finished) {
        // The implied finish (RESP-END-1) gets the same checks as an explicit one.
        if (check_finish(req, st, "the implied finish (handle returned CWSGI_OK)") || !fail_mode) {
            st->state = State::finished;
        }
    }
    if (st->failed) return CWSGI_E_APP; // fail mode: 500 before commit, a cut after
    return rc;
}

void lint_request_end(void *, cwsgi_request *req, int32_t outcome)
{
    ended.fetch_add(1, std::memory_order_relaxed);
    Req *st = nullptr;
    if (!find(req, &st)) {
        // Not a request lint's handle saw, or one that ended already: the counts at worker
        // exit say so (check_ends); the inner app hears of it as the server says.
        if (inner.desc.on_request_end) inner.desc.on_request_end(inner.state, req, outcome);
        return;
    }
    if (st != nullptr && ++st->ends > 1) {
        report(req, nullptr, SRV_END, "on_request_end called " + std::to_string(st->ends) + " times",
               "exactly once per request");
        return; // the inner app heard of this request's end already
    }
    if (st != nullptr && st->in_handle.load(std::memory_order_acquire)) {
        report(req, nullptr, SRV_END, "on_request_end while the request's handle still runs",
               "on_request_end after handle has returned");
    }
    if (inner.desc.on_request_end) {
        Running running_now(req);
        if (st != nullptr) {
            st->context.store(&thread_tag, std::memory_order_relaxed);
            coop_mark(st, "on_request_end's start");
        }
        inner.desc.on_request_end(inner.state, req, outcome);
        if (st != nullptr) coop_check(req, st, "on_request_end's return");
    }
    Shard &s = shard_of(req);
    std::lock_guard<std::mutex> lock(s.mu);
    s.live.erase(req);
}

int32_t lint_init(const cwsgi_server_api *, void **, char *errbuf, size_t errlen)
{
    return cwsgi::mw::init_inner(inner, &table, errbuf, errlen);
}

int32_t lint_worker_start(void *, uint32_t id, char *errbuf, size_t errlen)
{
    return inner.desc.worker_start ? inner.desc.worker_start(inner.state, id, errbuf, errlen) : CWSGI_OK;
}

void check_ends()
{
    uint64_t h = handled.load(), e = ended.load();
    if (h != e) {
        report(nullptr, nullptr, SRV_END,
               std::to_string(h) + " requests reached handle but " + std::to_string(e) +
                   " on_request_end calls were made",
               "exactly one on_request_end per request");
        handled = 0; // reported once, not again at exit
        ended = 0;
    }
}

void lint_worker_stop(void *, uint32_t id)
{
    if (inner.desc.worker_stop) inner.desc.worker_stop(inner.state, id);
    check_ends();
    summary(("worker " + std::to_string(id)).c_str());
    summarised = true;
}

void lint_destroy(void *)
{
    if (inner.desc.destroy) inner.desc.destroy(inner.state);
    if (!summarised) {
        check_ends();
        summary("exit");
    }
}

// A threshold in milliseconds from the environment, in nanoseconds; `dflt` when unset.
int64_t threshold_ns(const char *name, int64_t dflt)
{
    const char *v = std::getenv(name);
    if (v == nullptr || *v == '\0') return dflt;
    char *end = nullptr;
    double msv = std::strtod(v, &end);
    return end != v && msv >= 0 ? static_cast<int64_t>(msv * 1e6) : dflt;
}

} // namespace

extern "C" CWSGI_EXPORT int32_t cwsgi_app_entry(const cwsgi_server_api *api, const cwsgi_app_desc **out)
{
    server = api;
    for (auto &c : counts) c = 0; // a fresh load starts a fresh count (a host may load twice)
    handled = 0;
    ended = 0;
    summarised = false;
    coop_exec = -1;
    const char *mode = std::getenv("CWSGI_LINT");
    fail_mode = mode != nullptr && std::strcmp(mode, "fail") == 0;
    coop_sleep_ns = threshold_ns("CWSGI_LINT_COOP_SLEEP_MS", 20'000'000);
    coop_busy_ns = threshold_ns("CWSGI_LINT_COOP_BUSY_MS", 500'000'000);
    coop_min_ns =
        coop_sleep_ns > 0 && (coop_busy_ns == 0 || coop_sleep_ns < coop_busy_ns) ? coop_sleep_ns : coop_busy_ns;
    table = cwsgi::mw::copy_api(api);
    table.set_user_data = lint_set_user_data;
    table.get_user_data = lint_get_user_data;
    table.start_response = lint_start_response;
    table.write = lint_write;
    table.send_file = lint_send_file;
    table.finish = lint_finish;
    table.send_informational = lint_send_informational;
    table.read = lint_read;
    table.log = lint_log;
    table.get_extension = api->get_extension ? lint_get_extension : nullptr;
    if (table.struct_size > offsetof(cwsgi_server_api, wait_fd) && api->wait_fd != nullptr) {
        table.wait_fd = lint_wait_fd;
    }
    std::string error;
    if (!cwsgi::mw::load_inner(std::getenv("CWSGI_INNER_APP"), &table, inner, error)) {
        std::string line = "cwsgi-lint: " + error;
        api->log(nullptr, CWSGI_LOG_ERROR, line.data(), line.size());
        return CWSGI_E_INVAL;
    }
    desc = inner.desc; // ABI minor, thread-safety, caps, extensions, the cooperative flag (COMP-LINT-3)
    desc.name = "cwsgi-lint";
    desc.init = lint_init;
    desc.worker_start = lint_worker_start;
    desc.worker_stop = lint_worker_stop;
    desc.destroy = lint_destroy;
    desc.handle = lint_handle;
    desc.on_request_end = lint_request_end;
    *out = &desc;
    return CWSGI_OK;
}
