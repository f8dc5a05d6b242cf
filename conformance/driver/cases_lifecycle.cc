// cases_lifecycle.cc: workers, end of request, disconnects, backpressure, graceful stop, logs
// (spec/lifecycle.md: LIFE-*; spec/response.md RESP-BODY-2; spec/server.md LOG-*).
#include <cerrno>
#include <csignal>
#include <map>
#include <regex>
#include <set>
#include <sys/wait.h>
#include <thread>

#include "suite.hh"

namespace conf {

void check_server_answer(const Response &r, int status, const std::string &what); // cases_limits.cc

namespace {

// The processes of /t/stats that ran worker_start and neither ran worker_stop nor died (the
// latter is checked only for a server the driver started, whose pids are on this host).
std::vector<json> live_workers(const Ctx &ctx, const json &stats)
{
    std::vector<json> live;
    for (const json &r : stats["processes"]) {
        if (r["worker_stops"].get<int64_t>() != 0) continue;
        if (ctx.t.proc != nullptr && ::kill(static_cast<pid_t>(r["pid"].get<int64_t>()), 0) != 0 && errno == ESRCH)
            continue;
        live.push_back(r);
    }
    return live;
}

void worker_start(Ctx &ctx)
{
    // rule: LIFE-WORKER-1, LIFE-LOAD-1
    json s = ctx.stats();
    // The process that answered: init once in its memory, worker_start once, then requests.
    check_eq(s["inits"].get<int64_t>(), int64_t(1), "LIFE-LOAD-1: init calls in this process");
    if (s["worker_starts"].get<int64_t>() < 1) fail("LIFE-WORKER-1: worker_start never ran");
    check_eq(s["worker_starts"].get<int64_t>(), int64_t(1), "LIFE-WORKER-1: worker_start calls in this process");
    check_eq(s["handled_before_worker_start"].get<int64_t>(), int64_t(0),
             "LIFE-WORKER-1: handle calls before worker_start");
    if (s["last_worker_id"].get<int64_t>() < 1)
        fail("LIFE-WORKER-1: worker_id must be 1 or more, got " + s["last_worker_id"].dump());
    check_eq(s["info_worker_id"].get<int64_t>(), s["last_worker_id"].get<int64_t>(),
             "LIFE-WORKER-1: server_info.worker_id after worker_start");
    if (!s.value("shared", 0)) {
        ctx.diag.push_back(
            "per-worker checks skipped: the probe's bookkeeping is not shared by the server's processes (--url)");
        return;
    }
    // Every worker of the server (server_info.workers of them): each ran worker_start once with
    // an id of its own. Workers boot in parallel; the server may answer before the last did.
    const int64_t workers = ctx.caps_doc["workers"].get<int64_t>();
    std::vector<json> live;
    for (double t0 = now_ms();;) {
        live = live_workers(ctx, s);
        if (static_cast<int64_t>(live.size()) >= workers || now_ms() - t0 > 10000) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        s = ctx.stats();
    }
    check_eq(static_cast<int64_t>(live.size()), workers,
             "LIFE-WORKER-1: processes that ran worker_start (server_info.workers)");
    std::set<int64_t> ids;
    for (const json &r : live) {
        std::string who = "worker pid " + r["pid"].dump();
        check_eq(r["inits"].get<int64_t>(), int64_t(1), "LIFE-LOAD-1: init calls in the memory of " + who);
        check_eq(r["worker_starts"].get<int64_t>(), int64_t(1), "LIFE-WORKER-1: worker_start calls in " + who);
        int64_t id = r["worker_id"].get<int64_t>();
        if (id < 1) fail("LIFE-WORKER-1: " + who + " got worker_id " + std::to_string(id));
        if (!ids.insert(id).second) fail("LIFE-WORKER-1: two live workers got worker_id " + std::to_string(id));
    }
}

void server_info(Ctx &ctx)
{
    // rule: LIFE-INFO-1, ABI-VER-4
    const json &d = ctx.caps_doc;
    check_eq(d["server_info_rc"].get<int64_t>(), int64_t(CWSGI_OK), "LIFE-INFO-1: server_info result");
    check_eq(d["abi_major"].get<int64_t>(), int64_t(CWSGI_ABI_MAJOR), "ABI-VER-4: api->abi_major");
    if (d["abi_minor"].get<int64_t>() < 0) fail("ABI-VER-4: api->abi_minor");
    if (d["api_struct_size"].get<int64_t>() < static_cast<int64_t>(sizeof(cwsgi_server_api))) {
        fail("ABI-VER-4: api->struct_size " + d["api_struct_size"].dump() + " is below this header's table size " +
             std::to_string(sizeof(cwsgi_server_api)));
    }
    if (d["workers"].get<int64_t>() < 1) fail("LIFE-INFO-1: server_info.workers < 1");
    if (d["threads"].get<int64_t>() < 1) fail("LIFE-INFO-1: server_info.threads < 1");
    std::string adapter = d["adapter"].get<std::string>();
    if (adapter.empty()) fail("LIFE-INFO-1: server_info.adapter is empty");
    if (d["server_software"].get<std::string>().find(adapter) == std::string::npos) {
        fail("LIFE-INFO-1: server_software '" + d["server_software"].get<std::string>() +
             "' does not name the adapter");
    }
    if (ctx.suite.starts_servers()) {
        // The driver started it: the values are the flags it gave.
        check_eq(adapter, ctx.opt().adapter, "LIFE-INFO-1: server_info.adapter");
        if (ctx.opt().worker_class == "sync") {
            // THR-10: one request at a time per worker (the driver gives no --threads then).
            check_eq(d["threads"].get<int64_t>(), int64_t(1), "THR-10: server_info.threads in sync mode");
        } else {
            check_eq(d["threads"].get<int64_t>(), int64_t(8), "LIFE-INFO-1: server_info.threads (--threads 8)");
        }
        check_eq(d["limit_request_body"].get<int64_t>(), int64_t(-1),
                 "LIFE-INFO-1: limit_request_body without a limit");
        check_eq(d["limit_request_line"].get<int64_t>(), int64_t(4094), "LIFE-INFO-1: limit_request_line");
        check_eq(d["limit_request_fields"].get<int64_t>(), int64_t(100), "LIFE-INFO-1: limit_request_fields");
        check_eq(d["limit_request_field_size"].get<int64_t>(), int64_t(8190), "LIFE-INFO-1: limit_request_field_size");
        check_eq(d["graceful_timeout_ms"].get<int64_t>(), int64_t(30000), "LIFE-INFO-1: graceful_timeout_ms");
    }
    check_eq(d["is_shutting_down"].get<int64_t>(), int64_t(0), "LIFE-STOP-3: is_shutting_down before any stop");
    // rule: ABI-CAP-1: the same bits on every request
    json again = ctx.get_json("/t/caps");
    check_eq(again["caps"], d["caps"], "ABI-CAP-1: capabilities on a second request");
}

void multiprocess_flag(Ctx &ctx)
{
    // rule: LIFE-ARB-18: CWSGI_CAP_MULTIPROCESS (wsgi.multiprocess) with more than one worker;
    // without it, the fallback of ABI-CAP-3: one process runs the app.
    const int64_t workers = ctx.caps_doc["workers"].get<int64_t>();
    const bool declared = ctx.has(CWSGI_CAP_MULTIPROCESS);
    if (workers > 1 && !declared) {
        fail("LIFE-ARB-18: server_info.workers is " + std::to_string(workers) +
             " but CWSGI_CAP_MULTIPROCESS is not declared");
    }
    // rule: ABI-CAP-1: every worker offers the same bits. Fresh connections land on any worker.
    std::set<int64_t> pids;
    for (int i = 0; i < 40 && static_cast<int64_t>(pids.size()) < workers; i++) {
        json c = ctx.get_json("/t/caps");
        check_eq(c["caps"], ctx.caps_doc["caps"], "ABI-CAP-1: capabilities of worker pid " + c["pid"].dump());
        pids.insert(c["pid"].get<int64_t>());
    }
    ctx.diag.push_back(std::to_string(pids.size()) + " worker process(es) answered /t/caps; workers " +
                       std::to_string(workers) +
                       (declared ? ", multiprocess declared" : ", multiprocess not declared"));
    json s = ctx.stats();
    if (declared || !s.value("shared", 0)) return;
    size_t live = live_workers(ctx, s).size();
    if (live != 1) {
        fail("ABI-CAP-3: CWSGI_CAP_MULTIPROCESS is not declared, yet " + std::to_string(live) +
             " processes run the app");
    }
}

void end_once(Ctx &ctx, const std::string &target, int64_t outcome)
{
    // rule: LIFE-END-1, LIFE-END-2
    std::string tag = ctx.tag("end");
    std::string sep = target.find('?') == std::string::npos ? "?" : "&";
    Response r = ctx.exchange(ctx.req("GET", target + sep + "tag=" + tag));
    if (r.status == 0) fail("no response: " + r.error);
    json s = ctx.wait_ends(tag, 1, 5000);
    if (s["tag"].is_null() || s["tag"]["ends"].get<int>() < 1)
        fail("LIFE-END-1: on_request_end never ran for " + target);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    s = ctx.stats(tag);
    check_eq(s["tag"]["ends"].get<int64_t>(), int64_t(1), "LIFE-END-1: on_request_end calls for " + target);
    check_eq(s["tag"]["outcome"].get<int64_t>(), outcome, "LIFE-END-2: outcome for " + target);
}

void client_disconnect(Ctx &ctx)
{
    // rule: LIFE-END-1, LIFE-DISC-2: the client resets mid-stream; the app's write fails with
    // CWSGI_E_DISCONNECTED at once, and on_request_end runs exactly once with that outcome.
    std::string tag = ctx.tag("disc");
    Conn c = ctx.connect();
    std::string raw = ctx.req("GET", "/t/disconnect?mode=write&tag=" + tag);
    ctx.note_request(raw);
    c.send(raw);
    ReadOptions ro;
    uint64_t seen = 0;
    ro.store_body = false;
    ro.on_body = [&](const char *, size_t n) {
        seen += n;
        return seen < 65536;
    };
    Response r = c.read_response(ro);
    if (r.status != 200 || seen < 65536) fail("expected a streaming 200, got " + r.summary());
    c.reset();
    json s = ctx.wait_ends(tag, 1, 15000);
    if (s["tag"].is_null() || s["tag"]["ends"].get<int>() < 1)
        fail("LIFE-END-1: on_request_end did not run within 15 s of the client's reset");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    s = ctx.stats(tag);
    const json &t = s["tag"];
    check_eq(t["ends"].get<int64_t>(), int64_t(1), "LIFE-END-1: on_request_end calls");
    check_eq(t["outcome"].get<int64_t>(), int64_t(CWSGI_E_DISCONNECTED), "LIFE-END-2: outcome after a client reset");
    const json &n = t["notes"];
    if (n.contains("write_rc")) {
        check_eq(n["write_rc"].get<int64_t>(), int64_t(CWSGI_E_DISCONNECTED), "LIFE-DISC-2: the failing write");
        check_eq(n["write_rc2"].get<int64_t>(), int64_t(CWSGI_E_DISCONNECTED), "LIFE-DISC-2: the next write");
        // rule: LIFE-DISC-1: once a write failed, is_disconnected returns 1 (with or without
        // CWSGI_CAP_DISCONNECT)
        check_eq(n["disc_after_fail"].get<int64_t>(), int64_t(1),
                 "LIFE-DISC-1: is_disconnected after the failed write");
    } else if (n.value("saw_disc", 0) != 1) {
        fail("LIFE-DISC-2: the app kept writing for 30 s after the client left");
    }
}

void disconnect_detected(Ctx &ctx)
{
    // rule: LIFE-DISC-1 with CWSGI_CAP_DISCONNECT: noticed within 2 s without any app I/O, by a
    // helper thread of the app (THR-2: is_disconnected may be called from any thread).
    std::string tag = ctx.tag("discpoll");
    Conn c = ctx.connect();
    std::string raw = ctx.req("GET", "/t/disconnect?mode=poll&tag=" + tag);
    ctx.note_request(raw);
    c.send(raw);
    ReadOptions ro;
    ro.on_body = [](const char *, size_t) { return false; };
    Response r = c.read_response(ro);
    if (r.status != 200) fail("expected 200, got " + r.summary());
    c.close();
    json s = ctx.wait_ends(tag, 1, 15000);
    if (s["tag"].is_null() || s["tag"]["ends"].get<int>() < 1) fail("LIFE-END-1: on_request_end did not run");
    const json &n = s["tag"]["notes"];
    if (n.value("saw_disc", 0) != 1) fail("LIFE-DISC-1: is_disconnected stayed 0 for 10 s after the client closed");
    // The app polls every 10 ms after its first write; allow 2 s after the close plus slack.
    double detect_ms = n.value("polls", 0) * 10.0;
    if (detect_ms > 3000)
        fail("LIFE-DISC-1: the disconnect was noticed after about " + std::to_string(static_cast<int>(detect_ms)) +
             " ms (limit 2 s)");
    check_eq(s["tag"]["outcome"].get<int64_t>(), int64_t(CWSGI_E_DISCONNECTED), "LIFE-END-2: outcome");
}

void slow_reader(Ctx &ctx)
{
    // rule: RESP-BODY-2: a client reading 1.6 MB/s from a fast app: the app's writes block, and
    // the server's memory stays bounded.
    const uint64_t total = uint64_t(512) << 20;
    std::string tag = ctx.tag("slow");
    Conn c = ctx.connect(32 * 1024);
    std::string raw = ctx.req("GET", "/t/stream?n=" + std::to_string(total / 65536) + "&m=65536&cl=1&tag=" + tag);
    ctx.note_request(raw);
    long base = ctx.t.proc ? ctx.t.proc->rss_kib() : -1, peak = base;
    c.send(raw);
    ReadOptions ro;
    ro.store_body = false;
    uint64_t seen = 0;
    double t0 = now_ms(), last_sample = 0;
    ro.on_body = [&](const char *, size_t n) {
        seen += n;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        double t = now_ms() - t0;
        if (ctx.t.proc && t - last_sample > 250) {
            last_sample = t;
            peak = std::max(peak, ctx.t.proc->rss_kib());
        }
        return t < 3000;
    };
    Response r = c.read_response(ro);
    if (r.status != 200) fail("expected 200, got " + r.summary());
    if (ctx.t.proc) peak = std::max(peak, ctx.t.proc->rss_kib());
    c.reset();
    json s = ctx.wait_ends(tag, 1, 15000);
    if (s["tag"].is_null() || s["tag"]["ends"].get<int>() < 1)
        fail("LIFE-END-1: on_request_end did not run after the slow reader left");
    int64_t written = s["tag"]["notes"].value("written", int64_t(-1));
    ctx.diag.push_back("client read " + std::to_string(seen >> 10) + " KiB in 3 s; the app had written " +
                       std::to_string(written >> 10) + " KiB when its write failed");
    if (written >= 0 && static_cast<uint64_t>(written) > seen + (uint64_t(32) << 20)) {
        fail("RESP-BODY-2: the app wrote " + std::to_string(written >> 20) + " MiB while the client had read " +
             std::to_string(seen >> 20) + " MiB: writes did not block");
    }
    check_eq(s["tag"]["outcome"].get<int64_t>(), int64_t(CWSGI_E_DISCONNECTED), "LIFE-END-2: outcome");
    if (base >= 0) {
        long g = peak - base;
        ctx.diag.push_back("server RSS grew by " + std::to_string(g) + " KiB");
        if (g >= 32 * 1024)
            fail("RESP-BODY-2: server RSS grew by " + std::to_string(g / 1024) +
                 " MiB under a slow reader (limit 32 MiB)");
    } else {
        ctx.diag.push_back("RSS not checked: the driver did not start the server");
    }
}

void stalled_reader(Ctx &ctx)
{
    // rule: LIFE-DISC-2: a client that takes no byte for --client-timeout frees the app's thread.
    std::string tag = ctx.tag("stall");
    Conn c = ctx.connect(16 * 1024);
    std::string raw = ctx.req("GET", "/t/stream?n=100000&m=65536&tag=" + tag);
    ctx.note_request(raw);
    c.send(raw);
    ReadOptions ro;
    ro.on_body = [](const char *, size_t) { return false; };
    Response r = c.read_response(ro);
    if (r.status != 200) fail("expected 200, got " + r.summary());
    json s = ctx.wait_ends(tag, 1, (kLimitTimeoutS + 10) * 1000);
    if (s["tag"].is_null() || s["tag"]["ends"].get<int>() < 1) {
        fail("LIFE-DISC-2: the app's write was still blocked " + std::to_string(kLimitTimeoutS + 10) +
             " s after the client stopped reading (--client-timeout " + std::to_string(kLimitTimeoutS) + ")");
    }
    check_eq(s["tag"]["notes"].value("write_rc", int64_t(0)), int64_t(CWSGI_E_DISCONNECTED),
             "LIFE-DISC-2: the blocked write's result");
    c.close();
}

void large_response(Ctx &ctx)
{
    // rule: RESP-BODY-2: 1 GiB (64 MiB with --quick) streamed in bounded server memory.
    const uint64_t total = ctx.opt().quick ? (uint64_t(64) << 20) : (uint64_t(1) << 30);
    Conn c = ctx.connect();
    std::string raw = ctx.req("GET", "/t/stream?n=" + std::to_string(total / 65536) + "&m=65536&cl=1");
    ctx.note_request(raw);
    long base = ctx.t.proc ? ctx.t.proc->rss_kib() : -1, peak = base;
    c.send(raw);
    ReadOptions ro;
    ro.store_body = false;
    ro.total_timeout_ms = 120000;
    uint64_t off = 0, next_sample = 0;
    int64_t bad = -1;
    ro.on_body = [&](const char *p, size_t n) {
        if (bad < 0) {
            for (size_t i = 0; i < n; i++) {
                if (static_cast<unsigned char>(p[i]) != pattern_byte(off + i)) {
                    bad = static_cast<int64_t>(off + i);
                    break;
                }
            }
        }
        off += n;
        if (ctx.t.proc && off >= next_sample) {
            next_sample += uint64_t(16) << 20;
            peak = std::max(peak, ctx.t.proc->rss_kib());
        }
        return true;
    };
    Response r = c.read_response(ro);
    if (r.status != 200 || !r.complete)
        fail("expected a complete 200 of " + std::to_string(total) + " bytes, got " + r.summary() + " (limit 120 s)");
    check_eq(r.body_bytes, total, "RESP-BODY-2: body bytes");
    if (bad >= 0) fail("RESP-BODY-2: byte " + std::to_string(bad) + " of the stream differs");
    if (base >= 0) {
        long g = peak - base;
        ctx.diag.push_back("server RSS grew by " + std::to_string(g) + " KiB during a " + std::to_string(total >> 20) +
                           " MiB response, " + std::to_string(static_cast<int>(r.ms_done)) + " ms");
        if (g >= 32 * 1024) fail("RESP-BODY-2: server RSS grew by " + std::to_string(g / 1024) + " MiB (limit 32 MiB)");
    } else {
        ctx.diag.push_back("RSS not checked: the driver did not start the server");
    }
}

void graceful_stop(Ctx &ctx)
{
    // rule: LIFE-STOP-1..4, LIFE-WORKER-3, LIFE-LOAD-3: SIGTERM while requests are in flight.
    if (!ctx.suite.starts_servers()) skip("only when the driver starts the server (--adapter)");
    ServerProc *proc = ctx.t.proc;
    // C: an idle kept-alive connection.
    Conn idle = ctx.connect();
    idle.send(ctx.req("GET", "/t/env"));
    Response ri = idle.read_response({});
    if (ri.status != 200) fail("warm-up request: " + ri.summary());
    // A: a stream committed before the stop (8 x 1000 bytes, 250 ms apart).
    Conn a = ctx.connect();
    a.send(ctx.req("GET", "/t/stream?n=8&m=1000&delay_ms=250"));
    // B: a response committed after the stop began.
    Conn b = ctx.connect();
    b.send(ctx.req("GET", "/t/status?s=200&pre_delay_ms=1500&body=late&report_shutdown=1"));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    proc->signal(SIGTERM);
    double t_stop = now_ms();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    // LIFE-STOP-1: no new request is served.
    {
        std::string err;
        auto late = Conn::open(ctx.t.host, ctx.t.port, 1000, &err);
        if (late) {
            late->send(ctx.req("GET", "/t/env?late=1"));
            ReadOptions ro;
            ro.read_timeout_ms = 3000;
            Response lr = late->read_response(ro);
            if (lr.status >= 200 && lr.status < 300)
                fail("LIFE-STOP-1: a connection opened after SIGTERM was served (" + lr.summary() + ")");
        }
    }
    // LIFE-STOP-2: the idle connection is closed.
    if (!idle.wait_closed(3000))
        fail("LIFE-STOP-2: an idle kept-alive connection stayed open during the graceful stop");
    // LIFE-STOP-4: A completes.
    Response ra = a.read_response({});
    if (ra.status != 200 || !ra.complete) fail("LIFE-STOP-4: the in-flight stream did not complete: " + ra.summary());
    if (ra.body != pattern(0, 8000)) fail("LIFE-STOP-4: the in-flight stream's body differs");
    // LIFE-STOP-2/3: B was committed after the stop: Connection: close, and the app saw the stop.
    Response rb = b.read_response({});
    if (rb.status != 200 || !rb.complete || rb.body != "late")
        fail("LIFE-STOP-4: the sleeping request did not complete: " + rb.summary());
    if (!rb.has_token("Connection", "close"))
        fail("LIFE-STOP-2: a response committed during the stop must carry Connection: close");
    check_eq(rb.header("X-Shutting-Down").value_or("?"), std::string("1"),
             "LIFE-STOP-3: is_shutting_down during the stop");
    auto st = proc->wait_exit(15000);
    if (!st) fail("LIFE-STOP-4: the server was still running 15 s after SIGTERM with nothing in flight");
    double took = now_ms() - t_stop;
    if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0) {
        fail("LIFE-STOP-4: a graceful stop must exit with status 0, got " +
             (WIFEXITED(*st) ? "exit " + std::to_string(WEXITSTATUS(*st)) : "signal " + std::to_string(WTERMSIG(*st))));
    }
    ctx.diag.push_back("the server exited " + std::to_string(static_cast<int>(took)) + " ms after SIGTERM");
    proc->wait_output("probe: destroy", 2000);
    std::string out = proc->output();
    // One worker_stop line per worker (server_info.workers), each logged by its own process
    // ("[pid]" in the line) with that process's counts; destroy after the worker_stop of the
    // same process, or of every worker when the app was loaded once in the master (--preload).
    static const std::regex stop_re(
        R"(\[([0-9]+)\] \[[A-Z]+\] probe: worker_stop [0-9]+ handled=([0-9]+) ends=([0-9]+))");
    static const std::regex destroy_re(R"(\[([0-9]+)\] \[[A-Z]+\] probe: destroy)");
    std::map<std::string, size_t> stopped_at, destroyed_at;
    for (auto it = std::sregex_iterator(out.begin(), out.end(), stop_re); it != std::sregex_iterator(); ++it) {
        const std::smatch &m = *it;
        if (!stopped_at.emplace(m[1].str(), static_cast<size_t>(m.position(0))).second) {
            fail("LIFE-WORKER-3: worker_stop ran twice in process " + m[1].str());
        }
        if (m[2] != m[3]) {
            fail("LIFE-WORKER-3: worker_stop ran in process " + m[1].str() + " with " + m[2].str() +
                 " handled requests but only " + m[3].str() + " ended");
        }
    }
    for (auto it = std::sregex_iterator(out.begin(), out.end(), destroy_re); it != std::sregex_iterator(); ++it) {
        destroyed_at.emplace((*it)[1].str(), static_cast<size_t>(it->position(0)));
    }
    if (stopped_at.empty())
        fail("LIFE-WORKER-3: worker_stop was not called (no 'probe: worker_stop' in the error log)");
    if (destroyed_at.empty()) fail("LIFE-LOAD-3: destroy was not called (no 'probe: destroy' in the error log)");
    check_eq(static_cast<int64_t>(stopped_at.size()), ctx.caps_doc["workers"].get<int64_t>(),
             "LIFE-WORKER-3: processes that ran worker_start and logged worker_stop (server_info.workers)");
    // rule: THR-3: worker_stop and destroy one after the other, destroy last
    size_t last_stop = 0, last_destroy = 0;
    for (const auto &[pid, at] : stopped_at) last_stop = std::max(last_stop, at);
    for (const auto &[pid, at] : destroyed_at) last_destroy = std::max(last_destroy, at);
    for (const auto &[pid, at] : stopped_at) {
        auto own = destroyed_at.find(pid);
        if (own != destroyed_at.end() ? own->second < at : last_destroy < last_stop) {
            fail("LIFE-LOAD-3: destroy ran before worker_stop (process " + pid + ")");
        }
    }
}

void graceful_deadline(Ctx &ctx)
{
    // rule: LIFE-STOP-4: at the graceful deadline the server cuts what remains and exits 0.
    if (!ctx.suite.starts_servers()) skip("only when the driver starts the server (--adapter)");
    std::string err;
    auto proc = ctx.suite.start_server({"--threads", "4", "--graceful-timeout", "1"}, &err);
    if (!proc) fail("cwsgi-serve did not start: " + err);
    std::string e2;
    auto a = Conn::open("127.0.0.1", proc->port(), 3000, &e2);
    if (!a) fail("connect: " + e2);
    std::string raw = "GET /t/stream?n=40&m=1000&delay_ms=250 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    ctx.note_request(raw);
    a->send(raw);
    ReadOptions ro;
    ro.read_timeout_ms = 8000;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    proc->signal(SIGTERM);
    double t0 = now_ms();
    Response r = a->read_response(ro);
    double took = now_ms() - t0;
    if (r.status != 200) fail("expected the stream's 200, got " + r.summary());
    if (r.complete) fail("LIFE-STOP-4: a 10 s stream completed although --graceful-timeout is 1 s");
    if (r.error == "timeout") fail("LIFE-STOP-4: the stream was neither completed nor cut at the deadline");
    auto st = proc->wait_exit(10000);
    if (!st) fail("LIFE-STOP-4: the server still runs 10 s after SIGTERM with --graceful-timeout 1");
    if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0) fail("LIFE-STOP-4: exit status after the deadline must be 0");
    if (took > 5000)
        fail("LIFE-STOP-4: the stream was cut " + std::to_string(static_cast<int>(took)) +
             " ms after SIGTERM (deadline 1 s)");
    if (proc->output().find("probe: worker_stop") == std::string::npos)
        fail("LIFE-WORKER-3: worker_stop not called at the deadline");
}

// ---- logs -----------------------------------------------------------------------------------

void log_app_line(Ctx &ctx)
{
    // rule: LOG-ERR-1, LOG-ERR-2
    std::string tag = ctx.tag("log");
    Response r = ctx.get("/t/log?msg=" + tag + "%0Aforged%20line%0D%1B");
    if (r.status != 200) fail("GET /t/log: " + r.summary());
    json d = ctx.parse_json(r, "/t/log");
    check_eq(d["log_rc"].get<int64_t>(), int64_t(CWSGI_OK), "LOG-ERR-1: log result");
    check_eq(d["bad_level_rc"].get<int64_t>(), int64_t(CWSGI_E_INVAL), "LOG-ERR-1: log with level 5");
    // rule: ABI-TYPE-3: a NULL pointer with a non-zero length
    check_eq(d["null_msg_rc"].get<int64_t>(), int64_t(CWSGI_E_INVAL), "ABI-TYPE-3: log(NULL, 3)");
    if (!ctx.t.proc) skip("the log lines are checked only when the driver reads the server's error log");
    if (!ctx.t.proc->wait_output(tag, 3000)) fail("LOG-ERR-1: the app's message never reached the error log");
    std::string out = ctx.t.proc->output();
    size_t at = out.find(tag);
    size_t bol = out.rfind('\n', at);
    bol = bol == std::string::npos ? 0 : bol + 1;
    size_t eol = out.find('\n', at);
    std::string line = out.substr(bol, eol - bol);
    if (line.find("[WARNING]") == std::string::npos) fail("LOG-ERR-3: the line lacks [WARNING]: " + escape_bytes(line));
    if (line.find("[req ") == std::string::npos)
        fail("LOG-ERR-1: a line logged with a request handle must start its message with [req <id>]: " +
             escape_bytes(line));
    std::string lower = line;
    for (auto &ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (lower.find(tag + "\\x0aforged line\\x0d\\x1b") == std::string::npos) {
        fail("LOG-ERR-2: control characters must be written as \\xHH on one line, got: " + escape_bytes(line));
    }
}

void log_format(Ctx &ctx)
{
    // rule: LOG-ERR-3, LOG-ERR-4
    if (!ctx.t.proc) skip("needs the server's error log (--adapter or --server-cmd)");
    static const std::regex line_re(
        R"(^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\] .*$)");
    std::string out = ctx.t.proc->output();
    std::string listening;
    size_t pos = 0;
    int checked = 0;
    while (pos < out.size() && checked < 200) {
        size_t eol = out.find('\n', pos);
        if (eol == std::string::npos) break;
        std::string line = out.substr(pos, eol - pos);
        pos = eol + 1;
        if (line.rfind("[", 0) != 0) continue; // access-log lines and other output
        checked++;
        if (!std::regex_match(line, line_re))
            fail("LOG-ERR-3: error-log line not in gunicorn's format: " + escape_bytes(line));
        if (line.find("Listening at: ") != std::string::npos) listening = line;
    }
    // The URL's scheme is the listener's: https:// with --tls.
    const std::regex listen_re("\\[INFO\\] Listening at: " + ctx.scheme() + R"(://127\.0\.0\.1:(\d+) \((\d+)\)$)");
    std::smatch m;
    if (!std::regex_search(listening, m, listen_re))
        fail("LOG-ERR-4: no 'Listening at: " + ctx.scheme() +
             "://127.0.0.1:PORT (PID)' line at INFO: " + escape_bytes(listening));
    check_eq(m[1].str(), std::to_string(ctx.t.port), "LOG-ERR-4: port in the Listening line");
}

void log_refusal(Ctx &ctx)
{
    // rule: LOG-ERR-4: a refused request is logged with its status and rule ID.
    if (!ctx.t.proc) skip("needs the server's error log");
    std::string tag = ctx.tag("refuse");
    std::string raw = "GET /t/env?" + tag + " HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
    Response r = ctx.exchange(raw);
    check_server_answer(r, 400, "two Host fields");
    if (!ctx.t.proc->wait_output("REQ-HDR-3", 3000))
        fail("LOG-ERR-4: the refusal was not logged with its rule ID (REQ-HDR-3)");
}

void access_log(Ctx &ctx)
{
    // rule: LOG-ACCESS-1, LOG-ACCESS-2 (the driver starts servers with --access-logfile -)
    if (!ctx.suite.starts_servers()) skip("needs a server started with --access-logfile - (--adapter)");
    std::string tag = ctx.tag("access");
    Response r =
        ctx.get("/t/stream?n=1&m=123&cl=1&a=" + tag, "User-Agent: ua \"" + tag + "\"\r\nReferer: http://ref/\r\n");
    if (r.status != 200) fail("request: " + r.summary());
    if (!ctx.t.proc->wait_output("a=" + tag + " HTTP/1.1\"", 3000))
        fail("LOG-ACCESS-2: no access-log line for the request");
    std::string out = ctx.t.proc->output();
    size_t at = out.find("a=" + tag + " HTTP/1.1\"");
    size_t bol = out.rfind('\n', at);
    bol = bol == std::string::npos ? 0 : bol + 1;
    std::string line = out.substr(bol, out.find('\n', at) - bol);
    std::regex re("^127\\.0\\.0\\.1 - - \\[\\d\\d/[A-Z][a-z]{2}/\\d{4}:\\d\\d:\\d\\d:\\d\\d \\+0000\\] "
                  "\"GET /t/stream\\?n=1&m=123&cl=1&a=" +
                  tag + " HTTP/1\\.1\" 200 123 \"http://ref/\" \"ua \\\\\"" + tag + "\\\\\"\"$");
    if (!std::regex_match(line, re))
        fail("LOG-ACCESS-1: access-log line not in the combined format: " + escape_bytes(line));
    // A refused request gets a line too.
    std::string tag2 = ctx.tag("access-bad");
    ctx.exchange("GET /t/env?" + tag2 + " HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    if (!ctx.t.proc->wait_output(tag2 + " HTTP/1.1\" 400 ", 3000))
        fail("LOG-ACCESS-2: no access-log line with 400 for a refused request");
}

void check_mode(Ctx &ctx)
{
    // rule: LIFE-LOAD-4: --check loads, runs init, runs worker_start and worker_stop in a scratch
    // process, calls destroy in its own, prints the declaration and exits 0.
    if (!ctx.suite.starts_servers()) skip("needs cwsgi-serve (--adapter)");
    std::string cmd = "'" + ctx.opt().serve_bin + "' --check '" + ctx.opt().probe_path + "' 2>&1";
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) fail("cannot run " + cmd);
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0 && out.size() < (1u << 20)) out.append(buf, n);
    int st = pclose(p);
    ctx.note_request(cmd);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail("LIFE-LOAD-4: --check exited with status " + std::to_string(WEXITSTATUS(st)) + ": " +
             escape_bytes(out, 400));
    if (out.find("conformance-probe") == std::string::npos)
        fail("LIFE-LOAD-4: --check does not print the app's name: " + escape_bytes(out, 400));
    // The error-log line of `marker`: where it starts in `out` (npos if absent) and its "[pid]".
    auto log_line = [&out](const char *marker, std::string &pid) {
        size_t at = out.find(marker);
        if (at == std::string::npos) return at;
        size_t start = out.rfind('\n', at);
        start = start == std::string::npos ? 0 : start + 1;
        size_t open = out.find("] [", start);
        size_t close = open == std::string::npos ? open : out.find(']', open + 3);
        pid = close == std::string::npos || close > at ? "" : out.substr(open + 3, close - open - 3);
        return at;
    };
    std::string start_pid, stop_pid, destroy_pid;
    size_t started = log_line("probe: worker_start 1", start_pid);
    size_t stopped = log_line("probe: worker_stop 1", stop_pid);
    size_t destroyed = log_line("probe: destroy", destroy_pid);
    if (started == std::string::npos) fail("LIFE-LOAD-4: --check did not run worker_start: " + escape_bytes(out, 400));
    if (stopped == std::string::npos) fail("LIFE-LOAD-4: --check did not run worker_stop: " + escape_bytes(out, 400));
    if (destroyed == std::string::npos) fail("LIFE-LOAD-4: --check did not call destroy");
    if (!(started < stopped && stopped < destroyed))
        fail("LIFE-LOAD-4: expected worker_start, worker_stop, then destroy: " + escape_bytes(out, 600));
    if (start_pid.empty() || start_pid != stop_pid || start_pid == destroy_pid) {
        fail("LIFE-LOAD-4: worker_start ran in process [" + start_pid + "], worker_stop in [" + stop_pid +
             "] and destroy in [" + destroy_pid + "]: the worker callbacks belong in one scratch process");
    }
}

void ends_match_handled(Ctx &ctx)
{
    // rule: LIFE-END-1: after all the cases, every request that reached the app has ended once.
    json s;
    for (int i = 0; i < 100; i++) {
        s = ctx.stats();
        if (s["ends"] == s["handled"]) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    check_eq(s["ends"].get<int64_t>(), s["handled"].get<int64_t>(),
             "LIFE-END-1: on_request_end calls vs handle calls in this server's life");
    check_eq(s["outcomes"]["other"].get<int64_t>(), int64_t(0),
             "LIFE-END-2: outcomes outside OK/DISCONNECTED/ABORTED/APP");
}

} // namespace

void add_lifecycle_cases(std::vector<Case> &out)
{
    auto add = [&](const char *rule, const char *name, std::function<void(Ctx &)> fn, const char *prof = profile::base,
                   uint64_t caps = 0) {
        out.push_back({rule, name, prof, caps, false, std::move(fn)});
    };
    add("LIFE-WORKER-1", "worker-start-before-requests", worker_start);
    add("LIFE-INFO-1", "server-info", server_info);
    add("LIFE-ARB-18", "multiprocess-with-workers", multiprocess_flag);
    add("LIFE-END-1", "end-once-ok", [](Ctx &c) { end_once(c, "/t/env", CWSGI_OK); });
    add("LIFE-END-2", "end-once-app-error", [](Ctx &c) { end_once(c, "/t/fail?when=before", CWSGI_E_APP); });
    add("LIFE-END-2", "end-once-aborted", [](Ctx &c) { end_once(c, "/t/fail?when=after&w=10", CWSGI_E_ABORTED); });
    add("LIFE-END-1", "client-disconnect-mid-response", client_disconnect);
    add("LIFE-DISC-1", "disconnect-noticed-without-io", disconnect_detected, profile::base, CWSGI_CAP_DISCONNECT);
    add("RESP-BODY-2", "slow-reader-backpressure", slow_reader);
    add("LIFE-DISC-2", "stalled-reader-frees-thread", stalled_reader, profile::limits);
    add("RESP-BODY-2", "large-response-bounded-memory", large_response);
    add("LOG-ERR-2", "log-line-escaped", log_app_line);
    add("LOG-ERR-3", "log-format-and-listening-line", log_format);
    add("LOG-ERR-4", "log-refused-request-rule", log_refusal);
    add("LOG-ACCESS-1", "access-log-combined", access_log);
    add("LIFE-STOP-4", "graceful-stop-in-flight", graceful_stop, profile::fresh);
    add("LIFE-STOP-4", "graceful-deadline-cuts", graceful_deadline);
    add("LIFE-LOAD-4", "check-mode", check_mode);
    add("LIFE-END-1", "ends-match-handled", ends_match_handled);
}

} // namespace conf
