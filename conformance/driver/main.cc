// main.cc: cwsgi-conformance, the CWSGI conformance suite's driver.
//
// It tells, about any CWSGI server, which rules of the spec it keeps, case by case:
//   cwsgi-conformance --adapter microhttpd          start cwsgi-serve with the probe app
//   cwsgi-conformance --server-cmd 'srv {app} {port}'   start any server command
//   cwsgi-conformance --url http://127.0.0.1:8000   a server already serving the probe app
//   cwsgi-conformance --matrix                      every built adapter, a table, a differential
//   cwsgi-conformance --adapter h2o --tls           the same over TLS (a throwaway certificate)
// One line per case ("ok|not ok|skip RULE-ID case-name [— reason]"), or TAP with --tap, and the
// closing line "N passed, N failed, N skipped". The exit status is 0 only if no case failed.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <fstream>
#include <map>
#include <set>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>

#include "corpus.hh"
#include "suite.hh"

namespace fs = std::filesystem;
using namespace conf;

namespace {

// ---- output -------------------------------------------------------------------------------

class Reporter {
public:
    explicit Reporter(bool tap) : tap_(tap)
    {
        if (tap_) std::printf("TAP version 13\n");
    }
    /// Known limitations of the server under test (case name -> reason), from --known-limits.
    std::map<std::string, std::string> known_limits;
    /// Listed with a leading '~': the engine's behaviour depends on timing (a kernel's page
    /// reclaim, say), so a pass is reported as a pass rather than as a stale entry.
    std::set<std::string> known_limits_timing;
    std::string known_limits_file;

    void report(const Result &given, const std::string &suffix = "")
    {
        Result r = given;
        // A listed failure is a documented limitation of the engine: reported as a skip with
        // its reason. A listed case that passes fails, so the list cannot go stale.
        auto lim = known_limits.find(r.name);
        if (lim != known_limits.end()) {
            if (r.verdict == Verdict::fail) {
                r.verdict = Verdict::skip;
                r.reason = "known limitation (" + known_limits_file + "): " + lim->second + "; observed: " + r.reason;
            } else if (r.verdict == Verdict::pass && known_limits_timing.count(r.name) == 0) {
                r.verdict = Verdict::fail;
                r.reason = "listed in " + known_limits_file + " but passed: remove it from the list";
            }
        }
        std::lock_guard<std::mutex> lk(mu_);
        n_++;
        std::string name = r.rule + " " + r.name + suffix;
        if (tap_) {
            switch (r.verdict) {
            case Verdict::pass: std::printf("ok %d - %s\n", n_, name.c_str()); break;
            case Verdict::fail: std::printf("not ok %d - %s\n  # %s\n", n_, name.c_str(), r.reason.c_str()); break;
            case Verdict::skip: std::printf("ok %d - %s # SKIP %s\n", n_, name.c_str(), r.reason.c_str()); break;
            }
        } else {
            switch (r.verdict) {
            case Verdict::pass: std::printf("ok %s\n", name.c_str()); break;
            case Verdict::fail: std::printf("not ok %s \xe2\x80\x94 %s\n", name.c_str(), r.reason.c_str()); break;
            case Verdict::skip: std::printf("skip %s \xe2\x80\x94 %s\n", name.c_str(), r.reason.c_str()); break;
            }
        }
        if (r.verdict != Verdict::skip && (r.verdict == Verdict::fail || verbose)) {
            for (const auto &d : r.diag) std::printf("    # %s\n", d.c_str());
        }
        (r.verdict == Verdict::pass ? passed_ : r.verdict == Verdict::fail ? failed_ : skipped_)++;
        std::fflush(stdout);
    }
    /// Prints a free-form line (a TAP comment in TAP mode).
    void note(const std::string &s)
    {
        std::lock_guard<std::mutex> lk(mu_);
        std::printf(tap_ ? "# %s\n" : "%s\n", s.c_str());
        std::fflush(stdout);
    }
    void close()
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (tap_) std::printf("1..%d\n", n_);
        std::printf("%d passed, %d failed, %d skipped\n", passed_, failed_, skipped_);
        std::fflush(stdout);
    }
    int failed() const { return failed_; }
    bool verbose = false;

private:
    std::mutex mu_;
    bool tap_;
    int n_ = 0, passed_ = 0, failed_ = 0, skipped_ = 0;
};

// ---- the throwaway certificate of --tls ------------------------------------------------------

/// The temporary folder holding it; removed at the end of the run and by the watchdog.
std::string g_tls_dir;

void remove_tls_dir()
{
    if (g_tls_dir.empty()) return;
    std::error_code ec;
    fs::remove_all(g_tls_dir, ec);
    g_tls_dir.clear();
}

/// Makes a self-signed P-256 certificate for localhost and 127.0.0.1 (valid one day) with the
/// openssl command in a fresh $TMPDIR/cwsgi-tls-XXXXXX; sets *cert and *key. The certificate
/// is its own CA, so the driver verifies the server against it.
bool make_throwaway_cert(std::string *cert, std::string *key, std::string *err)
{
    const char *tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/cwsgi-tls-XXXXXX";
    if (!mkdtemp(templ.data())) {
        *err = std::string("mkdtemp ") + templ + ": " + std::strerror(errno);
        return false;
    }
    g_tls_dir = templ;
    *cert = templ + "/cert.pem";
    *key = templ + "/key.pem";
    pid_t pid = fork();
    if (pid < 0) {
        *err = std::string("fork: ") + std::strerror(errno);
        return false;
    }
    if (pid == 0) {
        int devnull = ::open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
        }
        execlp("openssl", "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
               "-nodes", "-keyout", key->c_str(), "-out", cert->c_str(), "-days", "1", "-subj", "/CN=localhost",
               "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1", static_cast<char *>(nullptr));
        dprintf(2, "exec openssl: %s\n", std::strerror(errno));
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || access(cert->c_str(), R_OK) != 0) {
        *err = "'openssl req -x509' failed (status " + std::to_string(st) + "); is the openssl command installed?";
        return false;
    }
    return true;
}

// ---- the watchdog: no case may hang the run -------------------------------------------------

std::atomic<double> g_case_started{0};
std::string g_case_name;
std::mutex g_case_mu;

void start_watchdog(int limit_s, Reporter &rep)
{
    std::thread([limit_s, &rep] {
        for (;;) {
            std::this_thread::sleep_for(std::chrono::seconds(1));
            double t0 = g_case_started.load();
            if (t0 > 0 && now_ms() - t0 > limit_s * 1000.0) {
                std::string name;
                {
                    std::lock_guard<std::mutex> lk(g_case_mu);
                    name = g_case_name;
                }
                Result r;
                r.rule = "DRIVER";
                r.name = name;
                r.verdict = Verdict::fail;
                r.reason = "the case ran longer than " + std::to_string(limit_s) + " s (watchdog); servers killed";
                rep.report(r);
                rep.close();
                kill_all_servers();
                remove_tls_dir();
                std::_Exit(1);
            }
        }
    }).detach();
}

Result run_one(Suite &suite, const Case &c)
{
    {
        std::lock_guard<std::mutex> lk(g_case_mu);
        g_case_name = c.rule + " " + c.name;
    }
    g_case_started = now_ms();
    Result r = suite.run_case(c);
    g_case_started = 0;
    return r;
}

// ---- locating binaries --------------------------------------------------------------------

std::string exe_dir()
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return ".";
    buf[n] = '\0';
    return fs::path(buf).parent_path().string();
}

std::string find_serve(const std::string &given)
{
    if (!given.empty()) return given;
    for (const std::string &p :
         {exe_dir() + "/cwsgi-serve", exe_dir() + "/../cwsgi-serve", std::string(CWSGI_SERVE_PATH)}) {
        if (!p.empty() && access(p.c_str(), X_OK) == 0) return p;
    }
    return "cwsgi-serve"; // PATH
}

std::string find_probe(const std::string &given)
{
    if (!given.empty()) return given;
    for (const std::string &p :
         {exe_dir() + "/probe.so", exe_dir() + "/../apps/probe.so", std::string(CWSGI_PROBE_PATH)}) {
        if (!p.empty() && access(p.c_str(), R_OK) == 0) return fs::absolute(p).string();
    }
    return "probe.so";
}

std::string default_corpus()
{
    if (const char *e = std::getenv("CWSGI_CORPUS"); e && *e) return e;
    return std::string(CWSGI_SOURCE_DIR) + "/../shared/corpus/gunicorn-requests-manifest.json";
}

/// Runs `serve --list-adapters`: one "name<TAB>built|missing<TAB>caps-hex" line per adapter.
std::vector<std::pair<std::string, bool>> list_adapters(const std::string &serve, std::string *err)
{
    std::vector<std::pair<std::string, bool>> out;
    std::string cmd = "'" + serve + "' --list-adapters 2>&1";
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) {
        *err = "cannot run " + serve;
        return out;
    }
    char line[512];
    std::string all;
    while (fgets(line, sizeof line, p)) {
        all += line;
        std::string s(line);
        size_t t1 = s.find('\t');
        if (t1 == std::string::npos) continue;
        size_t t2 = s.find('\t', t1 + 1);
        std::string state = s.substr(t1 + 1, t2 == std::string::npos ? std::string::npos : t2 - t1 - 1);
        while (!state.empty() && std::isspace(static_cast<unsigned char>(state.back()))) state.pop_back();
        out.emplace_back(s.substr(0, t1), state == "built");
    }
    int st = pclose(p);
    if (out.empty())
        *err = "no adapter lines from '" + serve + " --list-adapters' (status " + std::to_string(st) +
               "): " + escape_bytes(all, 300);
    return out;
}

// ---- the differential check -----------------------------------------------------------------

struct DiffReq {
    const char *rule;
    const char *name;
    std::string raw; // "{host}" is replaced
    bool head = false;
};

std::vector<DiffReq> diff_requests()
{
    const std::string H = "Host: {host}\r\n";
    return {
        {"RESP-FRAME-3", "stream-chunked", "GET /t/stream?n=3&m=100 HTTP/1.1\r\n" + H + "\r\n"},
        {"RESP-FRAME-1", "stream-length", "GET /t/stream?n=2&m=10&cl=1 HTTP/1.1\r\n" + H + "\r\n"},
        {"RESP-FRAME-4", "stream-http10", "GET /t/stream?n=2&m=10 HTTP/1.0\r\n\r\n"},
        {"RESP-HDR-4", "status-404-headers",
         "GET /t/status?s=404&h=X-A:1&h=Set-Cookie:a&h=set-cookie:b&body=nf HTTP/1.1\r\n" + H + "\r\n"},
        {"RESP-NOBODY-1", "status-204", "GET /t/status?s=204 HTTP/1.1\r\n" + H + "\r\n"},
        {"RESP-NOBODY-2", "status-304", "GET /t/status?s=304&cl=5 HTTP/1.1\r\n" + H + "\r\n"},
        {"RESP-NOBODY-3", "head", "HEAD /t/stream?n=3&m=10&cl=1 HTTP/1.1\r\n" + H + "\r\n", true},
        {"RESP-FRAME-2", "empty", "GET /t/status?s=200 HTTP/1.1\r\n" + H + "\r\n"},
        {"RESP-ERR-1", "error-500", "GET /t/fail?when=before HTTP/1.1\r\n" + H + "\r\n"},
        {"RESP-FILE-1", "send-file", "GET /t/file?n=10000&offset=5&count=100 HTTP/1.1\r\n" + H + "\r\n"},
        {"INPUT-READ-3", "echo", "POST /t/echo HTTP/1.1\r\n" + H + "Content-Length: 5\r\n\r\nhello"},
        {"INPUT-READ-3", "echo-chunked",
         "POST /t/echo HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"},
        {"RESP-LEN-2", "overrun", "GET /t/length?mode=over HTTP/1.1\r\n" + H + "\r\n"},
        {"REQ-HDR-3", "no-host-400", "GET /t/status?s=201 HTTP/1.1\r\n\r\n"},
        {"REQ-HDR-1", "bad-name-400", "GET /t/status?s=201 HTTP/1.1\r\n" + H + "X A: b\r\n\r\n"},
        {"LIMIT-1", "long-line-414", "GET /" + std::string(5000, 'a') + " HTTP/1.1\r\n" + H + "\r\n"},
        {"LIMIT-2", "many-fields-431",
         "GET /t/status?s=201 HTTP/1.1\r\n" + H +
             [] {
                 std::string s;
                 for (int i = 0; i < 120; i++) s += "X-" + std::to_string(i) + ": v\r\n";
                 return s;
             }() +
             "\r\n"},
        {"REQ-LINE-2", "version-505", "GET /t/status?s=201 HTTP/2.0\r\n" + H + "\r\n"},
        {"REQ-BODY-6", "cl-te-400",
         "POST /t/read HTTP/1.1\r\n" + H + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
    };
}

/// What must be equal on every adapter: status, reason, interim statuses, the header fields
/// other than Date/Server and framing (Content-Length, Transfer-Encoding, Connection,
/// Keep-Alive), in order, names lowercased, and the decoded body.
std::string normalise(const Response &r)
{
    std::ostringstream o;
    o << r.status << " " << r.reason << "\n";
    for (const auto &i : r.interim) o << "interim " << i.status << "\n";
    for (const auto &f : r.headers) {
        std::string n = f.name;
        for (auto &c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (n == "date" || n == "server" || n == "content-length" || n == "transfer-encoding" || n == "connection" ||
            n == "keep-alive")
            continue;
        o << n << ": " << f.value << "\n";
    }
    o << "body " << escape_bytes(r.body, 100000) << (r.complete ? "" : " (incomplete)") << "\n";
    return o.str();
}

} // namespace

int main(int argc, char **argv)
{
    std::signal(SIGPIPE, SIG_IGN);
    CLI::App cli{"cwsgi-conformance: checks a CWSGI server against the spec, case by case"};
    Options opt;
    std::string url, filter, corpus;
    bool tap = false, matrix = false, list = false, no_corpus = false;
    cli.add_option("--adapter", opt.adapter, "Start 'cwsgi-serve --adapter NAME' with the probe app on a free port");
    cli.add_option("--server-cmd", opt.server_cmd, "Start this command ({app} and {port} are replaced)");
    cli.add_option("--url", url,
                   "A running server that serves the probe app: http://127.0.0.1:PORT (https:// implies --tls)");
    cli.add_flag(
        "--tls", opt.tls,
        "Run every case over TLS: with --adapter, start the servers with --certfile/--keyfile of a throwaway "
        "self-signed certificate ({certfile} and {keyfile} in --server-cmd); raw HTTP/1 cases use ALPN http/1.1, "
        "HTTP/2 cases ALPN h2");
    cli.add_option("--tls-ca", opt.tls_ca,
                   "With --tls and --url or --server-cmd: verify the server's certificate against this CA file "
                   "(default: no verification; with --adapter the throwaway certificate is the CA)");
    cli.add_option(
        "-k,--worker-class", opt.worker_class,
        "With --adapter: run the probe in this execution mode (sync, gthread or gevent; default: the server's "
        "choice; sync runs without --threads 8)");
    cli.add_option("--server-arg", opt.server_args,
                   "With --adapter: one more argument for every cwsgi-serve started (repeat it: --server-arg=-w "
                   "--server-arg=2)")
        ->allow_extra_args(false);
    cli.add_option("--serve-bin", opt.serve_bin,
                   "cwsgi-serve to start (default: next to this program, then the build's)");
    cli.add_option("--probe", opt.probe_path, "The probe app (default: the build's probe.so)");
    cli.add_flag("--tap", tap, "Print TAP");
    cli.add_option("--filter", filter, "Run only the cases whose 'RULE-ID name' matches this regular expression");
    cli.add_flag("--matrix", matrix, "Run every built adapter, print a case x adapter table and a differential check");
    std::vector<std::string> only;
    cli.add_option("--adapters", only, "With --matrix: only these adapters (comma-separated; repeats allowed)")
        ->delimiter(',');
    cli.add_flag("--quick", opt.quick, "64 MiB instead of 1 GiB for the large upload and response");
    cli.add_option("--corpus", corpus,
                   "gunicorn corpus manifest (default: $CWSGI_CORPUS or ../shared/corpus/... next to the repo)");
    cli.add_flag("--no-corpus", no_corpus, "Do not replay the gunicorn corpus");
    cli.add_flag("--list", list, "List the cases and exit");
    std::string known_limits;
    cli.add_option("--known-limits", known_limits,
                   "File of 'case-name reason' lines: the server's documented limitations, reported as skips "
                   "(default with --adapter NAME: adapters/NAME/known-limits.txt in the source tree)");
    cli.add_flag("-v,--verbose", opt.verbose, "Print diagnostics of passing cases too");
    cli.add_option("--case-timeout", opt.case_timeout_s, "Seconds a case may run before the watchdog stops the run")
        ->capture_default_str();
    CLI11_PARSE(cli, argc, argv);

    int modes = !opt.adapter.empty() + !opt.server_cmd.empty() + !url.empty() + matrix;
    if (modes != 1 && !list) {
        std::fprintf(stderr, "cwsgi-conformance: give exactly one of --adapter, --server-cmd, --url, --matrix\n");
        return 2;
    }
    if (!url.empty()) {
        static const std::regex re(R"(^(https?)://(\[[0-9a-fA-F:]+\]|[0-9.]+):([0-9]+)/?$)");
        std::smatch m;
        if (!std::regex_match(url, m, re)) {
            std::fprintf(stderr,
                         "cwsgi-conformance: --url must look like http://127.0.0.1:PORT or https://127.0.0.1:PORT\n");
            return 2;
        }
        if (m[1] == "https") opt.tls = true;
        opt.url_host = m[2];
        opt.url_port = std::stoi(m[3]);
    }
    if (opt.tls && matrix) {
        std::fprintf(stderr,
                     "cwsgi-conformance: --tls runs one server (--adapter, --server-cmd or --url), not --matrix\n");
        return 2;
    }
    if (!opt.tls_ca.empty() && !opt.tls) {
        std::fprintf(stderr, "cwsgi-conformance: --tls-ca needs --tls\n");
        return 2;
    }
    opt.serve_bin = find_serve(opt.serve_bin);
    opt.probe_path = find_probe(opt.probe_path);

    std::vector<Case> cases = all_cases();
    std::string corpus_why;
    if (no_corpus) {
        corpus_why = "disabled by --no-corpus";
    } else {
        auto cc = corpus_cases(corpus.empty() ? default_corpus() : corpus, &corpus_why);
        cases.insert(cases.end(), cc.begin(), cc.end());
    }
    std::optional<std::regex> re;
    if (!filter.empty()) re.emplace(filter);
    std::vector<Case> selected;
    for (auto &c : cases) {
        if (!re || std::regex_search(c.rule + " " + c.name, *re)) selected.push_back(c);
    }
    if (list) {
        for (const auto &c : selected)
            std::printf("%s %s%s\n", c.rule.c_str(), c.name.c_str(), c.needs_caps ? " (needs a capability)" : "");
        return 0;
    }

    Reporter rep(tap);
    rep.verbose = opt.verbose;
    if (known_limits.empty() && !opt.adapter.empty() && !matrix) {
        std::string dflt = std::string(CWSGI_SOURCE_DIR) + "/adapters/" + opt.adapter + "/known-limits.txt";
        if (std::ifstream(dflt)) known_limits = dflt;
    }
    if (!known_limits.empty()) {
        std::ifstream in(known_limits);
        if (!in) {
            std::fprintf(stderr, "cwsgi-conformance: cannot read --known-limits %s\n", known_limits.c_str());
            return 2;
        }
        std::string line;
        while (std::getline(in, line)) {
            // "NAME REASON": the name up to the first blank, the reason after the blanks that
            // follow it; trailing blanks (and a CR from a CRLF file) are not part of either.
            size_t end = line.find_last_not_of(" \t\r");
            if (end == std::string::npos || line[0] == '#') continue;
            line.erase(end + 1);
            size_t sp = line.find_first_of(" \t");
            std::string name = line.substr(0, sp);
            std::string why = sp == std::string::npos ? "" : line.substr(line.find_first_not_of(" \t", sp));
            if (!name.empty() && name[0] == '~') {
                name.erase(0, 1);
                rep.known_limits_timing.insert(name);
            }
            rep.known_limits[name] = why;
        }
        size_t at = known_limits.rfind("/adapters/");
        rep.known_limits_file = at == std::string::npos ? known_limits : known_limits.substr(at + 1);
        rep.note("known limitations: " + std::to_string(rep.known_limits.size()) + " cases listed in " + known_limits);
    }
    if (opt.tls) {
        std::string err;
        if (opt.url_host.empty()) {
            if (!make_throwaway_cert(&opt.certfile, &opt.keyfile, &err)) {
                std::fprintf(stderr, "cwsgi-conformance: --tls: %s\n", err.c_str());
                remove_tls_dir();
                return 2;
            }
            if (!opt.adapter.empty() && opt.tls_ca.empty()) opt.tls_ca = opt.certfile;
        }
        TlsClientOptions to;
        to.ca_file = opt.tls_ca;
        if (!set_client_tls(to, &err)) {
            std::fprintf(stderr, "cwsgi-conformance: --tls: %s\n", err.c_str());
            remove_tls_dir();
            return 2;
        }
        rep.note("TLS: every connection over TLS (ALPN http/1.1 for raw HTTP/1, h2 for HTTP/2), certificate " +
                 (opt.tls_ca.empty() ? std::string("not verified") : "verified against " + opt.tls_ca));
    }
    start_watchdog(opt.case_timeout_s, rep);
    auto corpus_skip = [&](const std::string &suffix) {
        if (!corpus_why.empty() && (!re || std::regex_search("ENV-KEYS-3 corpus-replay", *re))) {
            Result r{"ENV-KEYS-3", "corpus-replay", Verdict::skip, corpus_why, {}};
            rep.report(r, suffix);
        }
    };

    if (!matrix) {
        {
            Suite suite(opt);
            for (const auto &c : selected) rep.report(run_one(suite, c));
        }
        corpus_skip("");
        rep.close();
        remove_tls_dir();
        return rep.failed() == 0 ? 0 : 1;
    }

    // --matrix: every built adapter, then the table and the differential.
    std::string err;
    auto adapters = list_adapters(opt.serve_bin, &err);
    if (adapters.empty()) {
        std::fprintf(stderr, "cwsgi-conformance: %s\n", err.c_str());
        return 2;
    }
    std::vector<std::string> built;
    for (const auto &[name, ok] : adapters) {
        if (ok) {
            built.push_back(name);
        } else {
            rep.note("adapter " + name + ": not built, left out");
        }
    }
    if (!only.empty()) {
        // --adapters picks (and may repeat) adapters, e.g. to self-test the differential.
        std::vector<std::string> chosen;
        for (const auto &a : only) {
            if (std::find(built.begin(), built.end(), a) == built.end()) {
                std::fprintf(stderr, "cwsgi-conformance: adapter %s is not built\n", a.c_str());
                return 2;
            }
            chosen.push_back(a);
        }
        built = chosen;
    }
    std::map<std::string, std::map<std::string, Verdict>> table; // case -> adapter -> verdict
    std::vector<std::string> order;
    std::vector<std::vector<std::pair<std::string, std::string>>> diff; // per run: (name, normalised)
    for (const auto &a : built) {
        rep.note("adapter " + a);
        Options o = opt;
        o.adapter = a;
        Suite suite(o);
        for (const auto &c : selected) {
            Result r = run_one(suite, c);
            std::string key = c.rule + " " + c.name;
            if (!table.count(key)) order.push_back(key);
            table[key][a] = r.verdict == Verdict::fail || !table[key].count(a) ? r.verdict : table[key][a];
            rep.report(r, " [" + a + "]");
        }
        corpus_skip(" [" + a + "]");
        // The differential requests, on this adapter's base server.
        diff.emplace_back();
        try {
            Target t = suite.target(profile::base);
            for (const auto &d : diff_requests()) {
                std::string raw = d.raw;
                for (size_t p; (p = raw.find("{host}")) != std::string::npos;)
                    raw.replace(p, 6, "127.0.0.1:" + std::to_string(t.port));
                std::string e;
                auto c = Conn::open(t.host, t.port, 5000, &e);
                std::string norm = "connect failed: " + e;
                if (c) {
                    c->send(raw);
                    ReadOptions ro;
                    ro.head = d.head;
                    norm = normalise(c->read_response(ro));
                }
                diff.back().emplace_back(d.name, norm);
            }
        } catch (const Fail &f) {
            rep.note("adapter " + a + ": differential requests not run: " + f.msg);
        } catch (const Skip &s) {
            rep.note("adapter " + a + ": differential requests not run: " + s.msg);
        }
    }
    // The table.
    size_t w = 10;
    for (const auto &k : order) w = std::max(w, k.size());
    std::vector<std::string> columns;
    for (const auto &a : built) {
        if (std::find(columns.begin(), columns.end(), a) == columns.end()) columns.push_back(a);
    }
    std::string head = "case" + std::string(w - 4, ' ');
    for (const auto &a : columns) head += "  " + a;
    rep.note(head);
    for (const auto &k : order) {
        std::string row = k + std::string(w - k.size(), ' ');
        for (const auto &a : columns) {
            auto v = table[k].count(a) ? table[k][a] : Verdict::skip;
            std::string cell = v == Verdict::pass ? "ok" : v == Verdict::fail ? "FAIL" : "skip";
            row += "  " + cell + std::string(a.size() > cell.size() ? a.size() - cell.size() : 0, ' ');
        }
        rep.note(row);
    }
    // The differential.
    auto reqs = diff_requests();
    if (built.size() < 2) {
        Result r{"RESP-HDR-4",
                 "differential",
                 Verdict::skip,
                 "the differential check needs two built adapters (" + std::to_string(built.size()) + " built)",
                 {}};
        rep.report(r);
        reqs.clear();
    }
    for (size_t i = 0; i < reqs.size(); i++) {
        Result r;
        r.rule = reqs[i].rule;
        r.name = std::string("differential-") + reqs[i].name;
        {
            r.verdict = Verdict::pass;
            const std::string &a0 = built[0];
            for (size_t j = 1; j < built.size(); j++) {
                const auto &x = diff[0], &y = diff[j];
                if (i >= x.size() || i >= y.size()) continue;
                if (x[i].second != y[i].second) {
                    r.verdict = Verdict::fail;
                    r.reason = a0 + " and " + built[j] + " answer differently";
                    r.diag.push_back(a0 + ": " + escape_bytes(x[i].second, 600));
                    r.diag.push_back(built[j] + ": " + escape_bytes(y[i].second, 600));
                }
            }
        }
        rep.report(r);
    }
    rep.close();
    return rep.failed() == 0 ? 0 : 1;
}
