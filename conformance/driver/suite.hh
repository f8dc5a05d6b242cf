// suite.hh: the conformance cases' framework: what a case is, the context it runs in, and the
// helpers every case uses to talk to the probe app.
//
// A case names the spec rule it checks (Case::rule, e.g. "RESP-LEN-2"), the server profile it
// needs and the capabilities it needs. It runs as a function that either returns (pass) or
// throws Fail / Skip with a reason. Fail messages say what was expected and what came back,
// and the driver prints the exact request bytes under them, so a server bug can be reported
// from the output alone.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cwsgi.h"
#include "json_bytes.hh" // b64decode, latin1
#include "rawhttp.hh"
#include "server.hh"

namespace conf {

using json = nlohmann::json;

/// Thrown by a case that found a violation.
struct Fail {
    std::string msg;
};
/// Thrown by a case that cannot run here (capability, mode, missing data).
struct Skip {
    std::string msg;
};

[[noreturn]] inline void fail(const std::string &m) { throw Fail{m}; }
[[noreturn]] inline void skip(const std::string &m) { throw Skip{m}; }
inline void check(bool ok, const std::string &m)
{
    if (!ok) fail(m);
}
template <typename A, typename B> void check_eq(const A &got, const B &want, const std::string &what);

/// Server profiles: the flags a driver-started server gets. Only "base" exists when the
/// driver did not start the server (--url, --server-cmd).
namespace profile {
inline constexpr const char *base = "base";     // --threads 8 --log-level info --access-logfile -
inline constexpr const char *limits = "limits"; // + --client-timeout 2 --limit-request-body 1048576
inline constexpr const char *mnt = "mnt";       // + --script-name /mnt
inline constexpr const char *fresh = "fresh";   // a new base server for this case alone
} // namespace profile

/// The probe's bookkeeping is shared by the processes of a server through the file this names
/// (probe.c); the driver sets it for every server it starts.
inline constexpr const char *kProbeSharedEnv = "CWSGI_PROBE_SHARED";

inline constexpr int64_t kLimitBody = 1048576; // the limits profile's --limit-request-body
inline constexpr int kLimitTimeoutS = 2;       // the limits profile's --client-timeout

struct Options {
    std::string adapter;    // --adapter
    std::string server_cmd; // --server-cmd
    std::string url_host;   // --url
    int url_port = 0;
    std::string serve_bin;                // cwsgi-serve path
    std::string probe_path;               // probe.so path
    std::string worker_class;             // --worker-class: passed on as -k (gthread, gevent), "" = the server's choice
    std::vector<std::string> server_args; // --server-arg: passed on to every cwsgi-serve started (e.g. -w 2)
    bool quick = false;
    bool verbose = false;
    /// --tls: every connection runs over TLS (raw HTTP/1 cases through OpenSSL with ALPN
    /// http/1.1, HTTP/2 cases through libcurl with ALPN h2). With --adapter the driver passes
    /// certfile/keyfile (a throwaway self-signed pair it made) to every server it starts.
    bool tls = false;
    std::string tls_ca;   // the CA the client verifies the server against ("" = no verification)
    std::string certfile; // --adapter/--server-cmd: the server's certificate and key
    std::string keyfile;
    int case_timeout_s = 150;
};

/// A server the cases talk to.
struct Target {
    std::string host = "127.0.0.1";
    int port = 0;
    ServerProc *proc = nullptr; // null when the driver did not start it
    std::string profile;
    std::string prefix; // the mount point the probe is served under ("/mnt" in profile mnt)
};

class Suite;

/// What a running case sees.
class Ctx {
public:
    Ctx(Suite &suite, Target target, uint64_t caps, const json &caps_doc);

    Suite &suite;
    Target t;
    uint64_t caps;
    json caps_doc; // /t/caps of this server

    bool has(uint64_t cap) const { return (caps & cap) == cap; }
    const Options &opt() const;
    /// The scheme of the connection to the target: "https" with --tls, else "http".
    std::string scheme() const { return opt().tls ? "https" : "http"; }
    /// A tag unique in this run, for ?tag= bookkeeping.
    std::string tag(const std::string &base);

    /// Opens a connection to the target (fails the case when it cannot).
    Conn connect(int rcvbuf = 0);
    /// Sends raw bytes on a new connection and reads one response.
    Response exchange(const std::string &raw, ReadOptions ro = {});
    /// GET `target` with Host and Connection: close, one response.
    Response get(const std::string &target, const std::string &extra_headers = "", ReadOptions ro = {});
    /// Builds a request: METHOD target HTTP/1.1, Host, extra headers (each ending in CRLF), body.
    std::string req(const std::string &method, const std::string &target, const std::string &extra_headers = "",
                    const std::string &body = "", const std::string &version = "HTTP/1.1") const;
    /// GET target and parse its JSON body (fails the case on a non-200 or bad JSON).
    json get_json(const std::string &target);
    /// Parses a response body as JSON (fails the case on bad JSON).
    json parse_json(const Response &r, const std::string &what);
    /// The probe's bookkeeping (/t/stats[?tag=]).
    json stats(const std::string &tag = "");
    /// Polls /t/stats?tag= until the tag has `ends` >= n or timeout_ms passes.
    json wait_ends(const std::string &tag, int n, int timeout_ms);
    /// How many requests have reached the app so far.
    int64_t handled();

    /// Remembers the request bytes to print under a failure.
    void note_request(const std::string &raw) { last_request = raw; }
    std::string last_request;
    std::vector<std::string> diag; // extra diagnostic lines

private:
    int tag_seq_ = 0;
};

struct Case {
    std::string rule; // spec rule ID, e.g. "RESP-LEN-2"
    std::string name; // short case name, e.g. "content-length-overrun"
    std::string profile = profile::base;
    uint64_t needs_caps = 0;
    bool needs_proc = false; // needs a server process the driver started (RSS, signals)
    std::function<void(Ctx &)> run;
};

/// Appends every case of one area to `out` (cases_*.cc).
void add_environ_cases(std::vector<Case> &out);
void add_input_cases(std::vector<Case> &out);
void add_response_cases(std::vector<Case> &out);
void add_lifecycle_cases(std::vector<Case> &out);
void add_limits_cases(std::vector<Case> &out);
void add_connection_cases(std::vector<Case> &out);
void add_http2_cases(std::vector<Case> &out);
std::vector<Case> all_cases();

enum class Verdict { pass, fail, skip };
struct Result {
    std::string rule, name;
    Verdict verdict = Verdict::pass;
    std::string reason;
    std::vector<std::string> diag;
};

/// Runs cases against one server configuration (an adapter, a command, or a URL).
class Suite {
public:
    explicit Suite(Options opt);
    ~Suite();
    const Options &opt() const { return opt_; }
    /// True when the driver starts servers (and may start several profiles).
    bool starts_servers() const { return !opt_.adapter.empty(); }
    /// The server for `profile`, started on first use. Throws Skip when this mode cannot
    /// provide it, Fail when it does not start.
    Target target(const std::string &prof);
    /// Starts a server with extra flags (adapter mode only); the caller owns it.
    std::unique_ptr<ServerProc> start_server(const std::vector<std::string> &extra, std::string *err);
    /// The capabilities the probe reports for `t`.
    std::pair<uint64_t, json> caps_of(const Target &t);
    Result run_case(const Case &c);
    int next_tag_seq() { return ++tag_seq_; }

private:
    std::vector<std::string> profile_flags(const std::string &prof) const;
    /// Starts argv with $CWSGI_PROBE_SHARED naming a fresh bookkeeping file, removed with it.
    std::unique_ptr<ServerProc> start_with_shared_bookkeeping(const std::vector<std::string> &argv, int port_hint,
                                                              std::string *err);
    Options opt_;
    std::map<std::string, std::unique_ptr<ServerProc>> servers_;
    std::map<std::string, std::pair<uint64_t, json>> caps_cache_;
    std::unique_ptr<ServerProc> fresh_;
    int tag_seq_ = 0;
};

// ---- small shared helpers ---------------------------------------------------------------

/// The probe's pattern byte at offset i (probe.c: probe_pattern).
inline unsigned char pattern_byte(uint64_t i)
{
    uint32_t x = static_cast<uint32_t>(i) * UINT32_C(2654435761);
    return static_cast<unsigned char>(x >> 24);
}
std::string pattern(uint64_t offset, size_t n);
/// Index of the first byte of `got` that differs from the pattern at `offset`, or -1.
int64_t pattern_mismatch(const std::string &got, uint64_t offset);
uint64_t fnv1a(uint64_t h, const void *p, size_t n);
inline constexpr uint64_t kFnvInit = 14695981039346656037ULL;
std::string fnv_hex(uint64_t h);
/// environ as a map (last value wins; the probe's list is checked for duplicates separately).
std::map<std::string, std::string> environ_map(const json &doc);
std::string code_name(int64_t code);
/// "name: value" list of headers for messages.
std::string fields_str(const std::vector<Field> &f);
double now_ms();

template <typename A, typename B> void check_eq(const A &got, const B &want, const std::string &what)
{
    if (!(got == want)) {
        std::string g, w;
        if constexpr (std::is_convertible_v<A, std::string>) {
            g = "'" + escape_bytes(std::string(got)) + "'";
        } else if constexpr (std::is_same_v<A, json>) {
            g = got.dump();
        } else {
            g = std::to_string(got);
        }
        if constexpr (std::is_convertible_v<B, std::string>) {
            w = "'" + escape_bytes(std::string(want)) + "'";
        } else if constexpr (std::is_same_v<B, json>) {
            w = want.dump();
        } else {
            w = std::to_string(want);
        }
        fail(what + ": expected " + w + ", got " + g);
    }
}

} // namespace conf
