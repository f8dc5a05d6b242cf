// suite.cc: the case framework (see suite.hh): servers per profile, the case context, and the
// helpers shared by every cases_*.cc file.
#include "suite.hh"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <thread>

namespace conf {

// ---- helpers ------------------------------------------------------------------------------

double now_ms()
{
    using namespace std::chrono;
    return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

std::string pattern(uint64_t offset, size_t n)
{
    std::string s(n, '\0');
    for (size_t i = 0; i < n; i++) s[i] = static_cast<char>(pattern_byte(offset + i));
    return s;
}

int64_t pattern_mismatch(const std::string &got, uint64_t offset)
{
    for (size_t i = 0; i < got.size(); i++) {
        if (static_cast<unsigned char>(got[i]) != pattern_byte(offset + i)) return static_cast<int64_t>(i);
    }
    return -1;
}

uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    auto *b = static_cast<const unsigned char *>(p);
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

std::string fnv_hex(uint64_t h)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

std::map<std::string, std::string> environ_map(const json &doc)
{
    std::map<std::string, std::string> m;
    if (!doc.contains("environ")) return m;
    for (const auto &kv : doc["environ"]) {
        m[latin1(kv[0].get<std::string>())] = latin1(kv[1].get<std::string>());
    }
    return m;
}

std::string code_name(int64_t code)
{
    return std::string(cwsgi_err_name(static_cast<int32_t>(code))) + " (" + std::to_string(code) + ")";
}

std::string fields_str(const std::vector<Field> &f)
{
    std::string s;
    for (const auto &x : f) {
        if (!s.empty()) s += " | ";
        s += x.name + ": " + x.value;
    }
    return s;
}

static std::string cap_names(uint64_t caps)
{
    static const std::pair<uint64_t, const char *> names[] = {
        {CWSGI_CAP_SENDFILE, "CWSGI_CAP_SENDFILE"},
        {CWSGI_CAP_INFORMATIONAL, "CWSGI_CAP_INFORMATIONAL"},
        {CWSGI_CAP_REQUEST_TRAILERS, "CWSGI_CAP_REQUEST_TRAILERS"},
        {CWSGI_CAP_DISCONNECT, "CWSGI_CAP_DISCONNECT"},
        {CWSGI_CAP_HTTP2, "CWSGI_CAP_HTTP2"},
        {CWSGI_CAP_TLS, "CWSGI_CAP_TLS"},
        {CWSGI_CAP_PIPELINING, "CWSGI_CAP_PIPELINING"},
        {CWSGI_CAP_MULTIPROCESS, "CWSGI_CAP_MULTIPROCESS"},
        {CWSGI_CAP_THREADS, "CWSGI_CAP_THREADS"},
    };
    std::string s;
    for (const auto &[bit, name] : names) {
        if (caps & bit) {
            if (!s.empty()) s += ", ";
            s += name;
        }
    }
    return s;
}

// ---- Ctx ----------------------------------------------------------------------------------

Ctx::Ctx(Suite &s, Target target, uint64_t c, const json &doc) : suite(s), t(std::move(target)), caps(c), caps_doc(doc)
{
}

const Options &Ctx::opt() const { return suite.opt(); }

std::string Ctx::tag(const std::string &base)
{
    return base + "-" + std::to_string(getpid()) + "-" + std::to_string(suite.next_tag_seq());
}

Conn Ctx::connect(int rcvbuf)
{
    std::string err;
    auto c = Conn::open(t.host, t.port, 5000, &err, rcvbuf);
    if (!c) fail("cannot connect to " + t.host + ":" + std::to_string(t.port) + ": " + err);
    return std::move(*c);
}

std::string Ctx::req(const std::string &method, const std::string &target, const std::string &extra_headers,
                     const std::string &body, const std::string &version) const
{
    std::string r = method + " " + target + " " + version + "\r\n";
    r += "Host: " + t.host + ":" + std::to_string(t.port) + "\r\n";
    r += extra_headers;
    if (!body.empty() && extra_headers.find("Content-Length") == std::string::npos &&
        extra_headers.find("Transfer-Encoding") == std::string::npos) {
        r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    }
    r += "\r\n";
    r += body;
    return r;
}

Response Ctx::exchange(const std::string &raw, ReadOptions ro)
{
    note_request(raw);
    Conn c = connect();
    if (!c.send(raw)) fail("could not send the request");
    return c.read_response(ro);
}

Response Ctx::get(const std::string &target, const std::string &extra_headers, ReadOptions ro)
{
    return exchange(req("GET", target, extra_headers), ro);
}

json Ctx::parse_json(const Response &r, const std::string &what)
{
    try {
        return json::parse(r.body);
    } catch (const std::exception &e) {
        fail(what + ": body is not JSON (" + e.what() + "): " + escape_bytes(r.body, 200));
    }
}

json Ctx::get_json(const std::string &target)
{
    std::string saved = last_request;
    Response r = get(target);
    if (r.status != 200 || !r.complete) {
        fail("GET " + target + ": expected a complete 200, got " + r.summary());
    }
    json j = parse_json(r, "GET " + target);
    // Bookkeeping queries must not hide the request a failure is about.
    if (target.find("/t/stats") != std::string::npos || target.find("/t/caps") != std::string::npos)
        last_request = saved;
    return j;
}

json Ctx::stats(const std::string &tag)
{
    return get_json(t.prefix + (tag.empty() ? "/t/stats" : "/t/stats?tag=" + tag));
}

json Ctx::wait_ends(const std::string &tag, int n, int timeout_ms)
{
    double t0 = now_ms();
    json s;
    for (;;) {
        s = stats(tag);
        if (!s["tag"].is_null() && s["tag"]["ends"].get<int>() >= n) return s;
        if (now_ms() - t0 > timeout_ms) return s;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

int64_t Ctx::handled() { return stats()["handled"].get<int64_t>(); }

// ---- Suite --------------------------------------------------------------------------------

Suite::Suite(Options opt) : opt_(std::move(opt)) {}
Suite::~Suite() = default;

std::vector<std::string> Suite::profile_flags(const std::string &prof) const
{
    // Sync mode runs without --threads: as in gunicorn, --threads 8 would make it gthread (THR-10).
    std::vector<std::string> f = {"--log-level", "info", "--access-logfile", "-"};
    if (opt_.worker_class != "sync") f.insert(f.begin(), {"--threads", "8"});
    if (prof == profile::limits) {
        f.insert(f.end(), {"--client-timeout", std::to_string(kLimitTimeoutS), "--limit-request-body",
                           std::to_string(kLimitBody)});
    } else if (prof == profile::mnt) {
        f.insert(f.end(), {"--script-name", "/mnt"});
    }
    return f;
}

std::unique_ptr<ServerProc> Suite::start_server(const std::vector<std::string> &extra, std::string *err)
{
    std::vector<std::string> argv = {opt_.serve_bin, "--adapter", opt_.adapter, "--bind", "127.0.0.1:0"};
    if (!opt_.worker_class.empty()) {
        argv.push_back("-k");
        argv.push_back(opt_.worker_class);
    }
    if (opt_.tls) argv.insert(argv.end(), {"--certfile", opt_.certfile, "--keyfile", opt_.keyfile});
    argv.insert(argv.end(), opt_.server_args.begin(), opt_.server_args.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(opt_.probe_path);
    return start_with_shared_bookkeeping(argv, 0, err);
}

std::unique_ptr<ServerProc> Suite::start_with_shared_bookkeeping(const std::vector<std::string> &argv, int port_hint,
                                                                 std::string *err)
{
    // Each server gets its own bookkeeping file, so that its workers (-w N) count together and
    // nothing mixes with another server's counts.
    std::string shared = make_shared_file();
    if (shared.empty()) {
        if (err) *err = std::string("cannot create the probe's bookkeeping file in $TMPDIR: ") + std::strerror(errno);
        return nullptr;
    }
    auto sp = ServerProc::start(argv, port_hint, 15000, err, {std::string(kProbeSharedEnv) + "=" + shared});
    if (sp) {
        sp->remove_on_exit(shared);
    } else {
        ::unlink(shared.c_str());
    }
    return sp;
}

Target Suite::target(const std::string &prof)
{
    Target t;
    t.profile = prof;
    if (!opt_.url_host.empty()) {
        if (prof != profile::base) skip("needs a server the driver starts with its own flags (--adapter mode)");
        t.host = opt_.url_host;
        t.port = opt_.url_port;
        return t;
    }
    if (!opt_.server_cmd.empty()) {
        if (prof != profile::base) skip("needs a server the driver starts with its own flags (--adapter mode)");
        auto &sp = servers_[prof];
        if (!sp) {
            int port = pick_free_port();
            std::string cmd = opt_.server_cmd;
            for (size_t p; (p = cmd.find("{port}")) != std::string::npos;) cmd.replace(p, 6, std::to_string(port));
            for (size_t p; (p = cmd.find("{app}")) != std::string::npos;) cmd.replace(p, 5, opt_.probe_path);
            for (size_t p; (p = cmd.find("{certfile}")) != std::string::npos;) cmd.replace(p, 10, opt_.certfile);
            for (size_t p; (p = cmd.find("{keyfile}")) != std::string::npos;) cmd.replace(p, 9, opt_.keyfile);
            std::string err;
            sp = start_with_shared_bookkeeping({"/bin/sh", "-c", "exec " + cmd}, port, &err);
            if (!sp) fail("server command did not start: " + err);
        }
        t.port = sp->port();
        t.proc = sp.get();
        return t;
    }
    std::unique_ptr<ServerProc> *slot;
    if (prof == profile::fresh) {
        fresh_.reset();
        slot = &fresh_;
    } else {
        slot = &servers_[prof];
        if (*slot && (*slot)->exited()) slot->reset();
    }
    if (!*slot) {
        std::string err;
        *slot = start_server(profile_flags(prof), &err);
        if (!*slot) fail("cwsgi-serve did not start (profile " + prof + "): " + err);
    }
    t.port = (*slot)->port();
    t.proc = slot->get();
    if (prof == profile::mnt) t.prefix = "/mnt";
    return t;
}

std::pair<uint64_t, json> Suite::caps_of(const Target &t)
{
    std::string key = t.host + ":" + std::to_string(t.port);
    auto it = caps_cache_.find(key);
    if (it != caps_cache_.end()) return it->second;
    std::string err;
    auto c = Conn::open(t.host, t.port, 5000, &err);
    if (!c) fail("cannot connect to read /t/caps: " + err);
    std::string raw = "GET " + t.prefix + "/t/caps HTTP/1.1\r\nHost: " + t.host + "\r\nConnection: close\r\n\r\n";
    c->send(raw);
    Response r = c->read_response({});
    if (r.status != 200 || !r.complete) fail("GET /t/caps: expected a complete 200, got " + r.summary());
    json j;
    try {
        j = json::parse(r.body);
    } catch (const std::exception &e) {
        fail(std::string("/t/caps is not JSON: ") + e.what());
    }
    uint64_t caps = std::stoull(j["caps"].get<std::string>(), nullptr, 16);
    caps_cache_[key] = {caps, j};
    return {caps, j};
}

Result Suite::run_case(const Case &c)
{
    Result res;
    res.rule = c.rule;
    res.name = c.name;
    std::string last_request;
    try {
        Target t = target(c.profile);
        if (c.needs_proc && t.proc == nullptr) {
            skip("needs the server process (--adapter or --server-cmd mode)");
        }
        auto [caps, doc] = caps_of(t);
        if ((caps & c.needs_caps) != c.needs_caps) {
            skip("server does not declare " + cap_names(c.needs_caps & ~caps));
        }
        Ctx ctx(*this, t, caps, doc);
        try {
            c.run(ctx);
        } catch (...) {
            last_request = ctx.last_request;
            res.diag = ctx.diag;
            throw;
        }
        res.diag = ctx.diag;
        res.verdict = Verdict::pass;
    } catch (const Fail &f) {
        res.verdict = Verdict::fail;
        res.reason = f.msg;
        if (!last_request.empty()) res.diag.push_back("request: " + escape_bytes(last_request, 600));
    } catch (const Skip &s) {
        res.verdict = Verdict::skip;
        res.reason = s.msg;
    } catch (const std::exception &e) {
        res.verdict = Verdict::fail;
        res.reason = std::string("driver error: ") + e.what();
        if (!last_request.empty()) res.diag.push_back("request: " + escape_bytes(last_request, 600));
    }
    return res;
}

std::vector<Case> all_cases()
{
    std::vector<Case> v;
    add_environ_cases(v);
    add_input_cases(v);
    add_response_cases(v);
    add_connection_cases(v);
    add_limits_cases(v);
    add_lifecycle_cases(v);
    add_http2_cases(v);
    return v;
}

} // namespace conf
