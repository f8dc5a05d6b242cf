// test_forking.cc: the forking adapter end to end. Each test starts a real master with its
// workers (`cwsgi-serve --adapter forking`, serving the conformance probe) on an ephemeral
// loopback port and talks raw HTTP/1.1 to it with tests/http_client.hh: keep-alive and
// pipelining, 64 keep-alive clients on two workers, a few hundred slow-loris connections, the
// 413 of a body over the limit, a disconnect while the app runs, a malformed head. The conformance
// suite covers what every adapter shares. Figures are printed as "# ..." lines.
#include "cmocka.hh"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "cwsgi.h"
#include "http_client.hh"

using namespace cwsgi::testing;

namespace {

std::string env_or(const char *name, const char *fallback)
{
    const char *v = std::getenv(name);
    return v != nullptr ? v : fallback;
}

const std::string &serve_bin()
{
    static const std::string s = env_or("CWSGI_SERVE", "src/cwsgi-serve/cwsgi-serve");
    return s;
}

const std::string &probe()
{
    static const std::string s = env_or("CWSGI_PROBE", "apps/probe.so");
    return s;
}

/// Starts the forking adapter with `flags` on the probe.
std::unique_ptr<ServeProcess> start(std::vector<std::string> flags)
{
    std::vector<std::string> args = {"--adapter", "forking"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back(probe());
    auto s = std::make_unique<ServeProcess>(serve_bin(), args);
    assert_int_not_equal(s->port(), 0);
    return s;
}

/// The integer after "key": in a JSON text, or `dflt`.
long long json_int(const std::string &text, const std::string &key, long long dflt = -999)
{
    size_t at = text.find("\"" + key + "\":");
    if (at == std::string::npos) return dflt;
    return std::atoll(text.c_str() + at + key.size() + 3);
}

/// GET /t/stats (on one connection, so on one worker).
std::string stats(Client &c, const std::string &tag = "")
{
    c.send(get("/t/stats" + (tag.empty() ? "" : "?tag=" + tag)));
    return c.read_response(5000).body;
}

void test_forking__keep_alive_and_pipelining(void **) // rule: RESP-FRAME-6
{
    auto s = start({"-w", "1"});
    Client c(s->port());
    assert_true(c.ok());
    // Two requests one after the other on one connection.
    for (int i = 0; i < 2; ++i) {
        assert_true(c.send(get("/t/status?s=200&body=seq" + std::to_string(i))));
        Response r = c.read_response();
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body.c_str(), ("seq" + std::to_string(i)).c_str());
    }
    // Three pipelined in one write: answered in order on the same connection.
    std::string burst;
    for (int i = 0; i < 3; ++i) burst += get("/t/status?s=200&body=pipe" + std::to_string(i));
    assert_true(c.send(burst));
    for (int i = 0; i < 3; ++i) {
        Response r = c.read_response();
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body.c_str(), ("pipe" + std::to_string(i)).c_str());
    }
    long long before = json_int(stats(c), "handled");
    // A request that closes the connection, with another one behind it: the second is never
    // processed (nothing after a request that closes the connection).
    assert_true(c.send(get("/t/status?s=200&body=last", "Connection: close\r\n") + get("/t/status?s=200&body=never")));
    Response r = c.read_response();
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.c_str(), "last");
    assert_true(c.wait_closed(3000));
    Client c2(s->port());
    long long after = json_int(stats(c2), "handled");
    assert_int_equal(after - before, 1);
}

void test_forking__64_keepalive_clients_on_two_workers(void **) // rule: LIFE-ARB-1
{
    // Every client keeps its connection and sends 10 requests, while one long request holds a
    // worker's only app thread (sync: one request at a time per worker) for 1.5 s: the loops
    // hold every idle connection meanwhile and all of them are served.
    auto s = start({"-w", "2", "-k", "gthread", "--threads", "1"});
    constexpr int kClients = 64, kRequests = 10;
    std::atomic<int> served{0}, failed{0};
    std::thread slow([&] {
        Client c(s->port());
        c.send(get("/t/sleep?ms=1500"));
        if (c.read_response(10000).status != 200) failed++;
    });
    std::vector<std::thread> threads;
    auto t0 = Clock::now();
    for (int i = 0; i < kClients; ++i) {
        threads.emplace_back([&, i] {
            Client c(s->port());
            for (int k = 0; k < kRequests; ++k) {
                if (!c.send(get("/t/status?s=200&body=c" + std::to_string(i)))) {
                    failed++;
                    return;
                }
                Response r = c.read_response(15000);
                if (r.status == 200 && r.body == "c" + std::to_string(i)) {
                    served++;
                } else {
                    failed++;
                    return;
                }
            }
        });
    }
    for (auto &t : threads) t.join();
    slow.join();
    std::printf("# 64 keep-alive clients on -w 2 (sync): %d of %d requests served in %.0f ms, %d failed\n",
                served.load(), kClients * kRequests, ms_since(t0), failed.load());
    assert_int_equal(failed.load(), 0);
    assert_int_equal(served.load(), kClients * kRequests);
}

void test_forking__slow_loris_cut_with_408(void **) // rule: LIMIT-5
{
    // A few hundred clients trickle a head one byte at a time, faster than any idle timeout
    // would notice; each is cut with 408 about --client-timeout after its first byte, and a
    // normal client is served all along.
    auto s = start({"-w", "2", "--client-timeout", "2"});
    constexpr int kLoris = 300;
    const std::string head = "GET /t/status?s=200 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    std::vector<std::unique_ptr<Client>> loris;
    std::vector<int> got(kLoris, 0); // the status each one received (0: none yet)
    std::vector<size_t> sent(kLoris, 0);
    auto t0 = Clock::now();
    // Paced: 20 connections per 50 ms, so that a small listen backlog is never overrun.
    for (int i = 0; i < kLoris; ++i) {
        loris.push_back(std::make_unique<Client>(s->port()));
        assert_true(loris.back()->ok());
        if (i % 20 == 19) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    int normal_ok = 0, normal_total = 0;
    double worst_ms = 0;
    Client normal(s->port());
    while (ms_since(t0) < 12000) {
        int open = 0;
        for (int i = 0; i < kLoris; ++i) {
            if (got[i] != 0) continue;
            ++open;
            Client &c = *loris[i];
            // One more byte of the head (the head never ends: 'x' forever).
            char b = sent[i] < head.size() ? head[sent[i]] : 'x';
            if (::send(c.fd(), &b, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) sent[i]++;
            pollfd p{c.fd(), POLLIN, 0};
            if (::poll(&p, 1, 0) == 1) {
                Response r = c.read_response(1000);
                got[i] = r.status != 0 ? r.status : -1;
            }
        }
        if (open == 0) break;
        auto t1 = Clock::now();
        ++normal_total;
        if (normal.send(get("/t/status?s=200&body=ok"))) {
            Response r = normal.read_response(5000);
            if (r.status == 200 && r.body == "ok") ++normal_ok;
        }
        worst_ms = std::max(worst_ms, ms_since(t1));
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    int n408 = 0;
    for (int v : got) n408 += v == 408;
    std::printf("# slow loris: %d of %d connections cut with 408 in %.0f ms; a normal client got %d of %d answers, "
                "the slowest in %.0f ms\n",
                n408, kLoris, ms_since(t0), normal_ok, normal_total, worst_ms);
    assert_int_equal(n408, kLoris);
    assert_int_equal(normal_ok, normal_total);
    assert_true(worst_ms < 2000);
}

void test_forking__body_over_limit_gets_413(void **) // rule: LIMIT-4
{
    auto s = start({"-w", "1", "--limit-request-body", "1024"});
    {
        // A declared length over the limit: 413 at once, and the client that goes on sending
        // its body (256 KiB of it) still reads the answer (read and drop before the close).
        Client c(s->port());
        std::string head = "POST /t/read HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4194304\r\n\r\n";
        assert_true(c.send(head));
        std::thread writer([&] {
            std::string chunk(16384, 'b');
            for (int i = 0; i < 16; ++i) {
                if (::send(c.fd(), chunk.data(), chunk.size(), MSG_NOSIGNAL) <= 0) break;
            }
        });
        Response r = c.read_response(5000);
        writer.join();
        assert_int_equal(r.status, 413);
        assert_true(r.complete);
        assert_true(c.wait_closed(8000));
    }
    {
        // A chunked body that grows past the limit: the core's 413 through the adapter.
        Client c(s->port());
        std::string req = "POST /t/read HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        for (int i = 0; i < 4; ++i) req += "400\r\n" + std::string(1024, 'c') + "\r\n";
        req += "0\r\n\r\n";
        assert_true(c.send(req));
        Response r = c.read_response(5000);
        assert_int_equal(r.status, 413);
        assert_true(c.wait_closed(8000));
    }
}

void test_forking__disconnect_seen_while_app_runs(void **) // rule: LIFE-DISC-1
{
    auto s = start({"-w", "1"});
    Client c(s->port());
    c.send(get("/t/disconnect?mode=poll&tag=fdisc"));
    // The probe commits one chunk, then only polls is_disconnected; read its head, then leave.
    pollfd p{c.fd(), POLLIN, 0};
    assert_int_equal(::poll(&p, 1, 5000), 1);
    c.close();
    Client q(s->port());
    std::string st;
    auto t0 = Clock::now();
    while (ms_since(t0) < 8000) {
        st = stats(q, "fdisc");
        if (json_int(st, "ends", 0) >= 1) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::printf("# disconnect noticed after %lld polls of 10 ms\n", json_int(st, "polls"));
    assert_int_equal(json_int(st, "saw_disc"), 1);
    assert_true(json_int(st, "polls") * 10 < 3000);
    assert_int_equal(json_int(st, "outcome"), CWSGI_E_DISCONNECTED);
}

void test_forking__malformed_head_never_reaches_app(void **) // rule: REQ-REPLY-1
{
    auto s = start({"-w", "1"});
    Client q(s->port());
    long long before = json_int(stats(q), "handled");
    Client c(s->port());
    // Whitespace before the colon (RFC 9112 section 5.1): the parser's 400, then the close.
    c.send("GET /t/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bad : 1\r\n\r\n");
    Response r = c.read_response(5000);
    assert_int_equal(r.status, 400);
    assert_true(c.wait_closed(8000));
    long long after = json_int(stats(q), "handled");
    assert_int_equal(after, before);
}

void test_forking__half_close_still_answered(void **) // rule: LIFE-DISC-1
{
    // A client that sends its request and then shuts its side for writing still gets the whole
    // answer (gunicorn serves it), in every mode, for a quick handle and a slow one.
    for (const char *mode : {"sync", "gthread", "gevent"}) {
        auto s = start({"-w", "1", "-k", mode});
        for (const char *target : {"/t/status?s=200&body=half", "/t/sleep?ms=200"}) {
            Client c(s->port());
            assert_true(c.send(get(target)));
            c.shutdown_write();
            Response r = c.read_response(5000);
            if (r.status != 200 || !r.complete) fail_msg("-k %s %s: %d %s", mode, target, r.status, r.error.c_str());
            if (std::string(target).find("body=half") != std::string::npos) assert_string_equal(r.body.c_str(), "half");
        }
    }
}

void test_forking__sync_holds_other_connections(void **) // rule: THR-10
{
    // -k sync on one worker: a sleeping request blocks the worker; a connection that arrives
    // meanwhile, pipelining two requests, is held and answered right after it, in order.
    auto s = start({"-w", "1", "-k", "sync"});
    Client slow(s->port());
    assert_true(slow.send(get("/t/sleep?ms=800")));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto t0 = Clock::now();
    Client other(s->port());
    assert_true(other.send(get("/t/status?s=200&body=one") + get("/t/status?s=200&body=two")));
    Response a = other.read_response(5000);
    const double waited = ms_since(t0);
    Response b = other.read_response(5000);
    assert_int_equal(slow.read_response(5000).status, 200);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.body.c_str(), "one");
    assert_int_equal(b.status, 200);
    assert_string_equal(b.body.c_str(), "two");
    std::printf("# sync: a held connection was answered %.0f ms after it sent, behind an 800 ms request\n", waited);
    assert_true(waited >= 500); // held, not served beside the sleeper
    // CWSGI_CAP_THREADS is left out in this mode.
    other.send(get("/t/caps"));
    Response caps = other.read_response(5000);
    assert_int_equal(caps.status, 200);
    size_t at = caps.body.find("\"caps\":\"");
    assert_true(at != std::string::npos);
    unsigned long long bits = std::strtoull(caps.body.c_str() + at + 8, nullptr, 16);
    assert_int_equal(bits & CWSGI_CAP_THREADS, 0);
}

void test_forking__sync_large_response_to_a_slow_reader(void **) // rule: THR-10
{
    // 8 MiB written and 8 MiB sent with send_file, read late: the worker blocks on the socket
    // with bounded buffers, and every byte arrives.
    auto s = start({"-w", "1", "-k", "sync"});
    for (const char *target : {"/t/stream?n=128&m=65536&cl=1", "/t/file?n=8388608"}) {
        Client c(s->port());
        assert_true(c.send(get(target)));
        std::this_thread::sleep_for(std::chrono::milliseconds(300)); // let the buffers fill
        Response r = c.read_response(20000);
        if (r.status != 200 || !r.complete) fail_msg("%s: %d %s", target, r.status, r.error.c_str());
        assert_int_equal(r.body.size(), 8388608);
    }
}

void test_forking__sync_graceful_stop_drains_the_request(void **) // rule: THR-10
{
    // TERM while a sync request runs: it finishes and is answered.
    auto s = start({"-w", "1", "-k", "sync", "--graceful-timeout", "5"});
    Client c(s->port());
    assert_true(c.send(get("/t/sleep?ms=700")));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    s->signal(SIGTERM);
    Response r = c.read_response(5000);
    assert_int_equal(r.status, 200);
}

} // namespace

int main()
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forking__keep_alive_and_pipelining),
        cmocka_unit_test(test_forking__64_keepalive_clients_on_two_workers),
        cmocka_unit_test(test_forking__slow_loris_cut_with_408),
        cmocka_unit_test(test_forking__body_over_limit_gets_413),
        cmocka_unit_test(test_forking__disconnect_seen_while_app_runs),
        cmocka_unit_test(test_forking__malformed_head_never_reaches_app),
        cmocka_unit_test(test_forking__half_close_still_answered),
        cmocka_unit_test(test_forking__sync_holds_other_connections),
        cmocka_unit_test(test_forking__sync_large_response_to_a_slow_reader),
        cmocka_unit_test(test_forking__sync_graceful_stop_drains_the_request),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
