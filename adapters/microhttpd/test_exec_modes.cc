// test_exec_modes.cc: acceptance tests of the two execution modes, end to end: each test starts
// a real `cwsgi-serve --adapter microhttpd` on an ephemeral loopback port (read from its
// "Listening at:" line), talks HTTP/1.1 to it over fresh sockets, and checks what a user would
// see: latencies, answers, the log, the exit status. The app is tests/fixtures/exec_modes.c
// (fixture_exec.so, fixture_exec_serial.so) or the 1.0-built fixture_v10.so. Each test names
// the spec rule it checks. Every wait is bounded; a server left running is killed by its pid.
#include "cmocka.hh"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "http_client.hh"

namespace {

using namespace cwsgi::testing;

std::string serve_binary() { return cwsgi::testing::serve_binary("src/cwsgi-serve"); }

std::string fixture(const char *name) { return build_path(std::string("tests/fixtures/") + name); }

// A cwsgi-serve child: `args` (APP included) plus "--bind 127.0.0.1:0" and, with `log_path`,
// "--error-logfile LOG"; it waits up to 10 s for "Listening at:" (port() is 0 when it never came).
class Serve : public ServeProcess {
public:
    explicit Serve(std::vector<std::string> args, std::string log_path = "")
        : ServeProcess(serve_binary(), std::move(args), options(std::move(log_path)))
    {
    }

private:
    static ServeOptions options(std::string log_path)
    {
        ServeOptions o;
        o.start_timeout_ms = 10000;
        o.log_path = std::move(log_path);
        return o;
    }
};

// ---- THR-4: a spinning handle stalls only its own loop thread ----------------------------

struct SpinFigures {
    double first_hello_ms = 0; // latency of the first /hello sent while /spin runs
    double max_hello_ms = 0;   // the slowest of the ten
    double spin_ms = 0;        // from sending /spin to its answer
    double hellos_done_ms = 0; // from sending /spin to the last /hello answer
};

// Sends /spin, waits until the app says it spins, then sends ten /hello on fresh connections.
SpinFigures spin_and_hello(unsigned loop_threads)
{
    SpinFigures f;
    Serve s({"--adapter", "microhttpd", "-k", "gevent", "--loop-threads", std::to_string(loop_threads),
             fixture("fixture_exec.so")});
    assert_int_not_equal(s.port(), 0);
    Client spin(s.port());
    assert_true(spin.ok());
    auto t0 = Clock::now();
    assert_true(spin.send_get("/spin"));
    assert_true(s.wait_for("spin: started", 5000));
    for (int i = 0; i < 10; ++i) {
        auto t = Clock::now();
        Client c(s.port());
        Response r = c.get("/hello");
        double ms = ms_since(t);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body.c_str(), "hello\n");
        if (i == 0) f.first_hello_ms = ms;
        f.max_hello_ms = std::max(f.max_hello_ms, ms);
    }
    f.hellos_done_ms = ms_since(t0);
    Response r = spin.read_whole(5000);
    f.spin_ms = ms_since(t0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.c_str(), "spun\n");
    std::printf("# --loop-threads %u: first /hello %.1f ms, slowest %.1f ms, ten done after %.1f ms, /spin "
                "answered after %.1f ms\n",
                loop_threads, f.first_hello_ms, f.max_hello_ms, f.hellos_done_ms, f.spin_ms);
    return f;
}

void test_exec_modes__spin_stalls_only_its_loop_thread(void **) // rule: THR-4, THR-5
{
    // With two loop threads each accepting from the shared socket, the one stuck in /spin
    // accepts nothing and the other answers every /hello while the spin goes on.
    SpinFigures f = spin_and_hello(2);
    assert_true(f.max_hello_ms < 100);
    assert_true(f.hellos_done_ms < f.spin_ms); // the hellos were answered during the spin
}

void test_exec_modes__spin_stalls_a_single_loop_thread(void **) // rule: THR-4, THR-5
{
    // The contrast, which shows the test above can fail: with one loop thread the first
    // /hello waits for the 200 ms spin to end.
    SpinFigures f = spin_and_hello(1);
    assert_true(f.first_hello_ms >= 150);
}

// ---- THR-7: a stack overflow is reported with its request --------------------------------

void test_exec_modes__stack_overflow_names_the_request(void **) // rule: THR-7
{
    // This holds under AddressSanitizer too: the fiber layer installs its handler after
    // ASan's and reports the guard-page fault itself.
    char dir[] = "/tmp/cwsgi-exec-modes-XXXXXX";
    assert_non_null(mkdtemp(dir));
    std::string log_path = std::string(dir) + "/error.log";
    int st;
    std::string out, log;
    {
        Serve s({"--adapter", "microhttpd", "-k", "gevent", "--stack-size", "64k", fixture("fixture_exec.so")},
                log_path);
        assert_int_not_equal(s.port(), 0);
        Client c(s.port());
        Response r = c.get("/deep?x=1");
        assert_int_equal(r.status, 0); // no answer: the worker process died
        // The worker died by SIGSEGV; its master says so and serves on with a new worker
        // (LIFE-ARB-5).
        st = s.wait_for("was sent SIGSEGV!", 10000) ? 0 : -1;
        Client again(s.port());
        if (again.get("/hello").status != 200) st = -2;
        // The dying worker's line reaches stderr through a pipe that a reader thread drains:
        // wait until it is in both streams (output and log) before reading them.
        (void)s.wait_for("cwsgi: stack overflow in handle()", 5000, 2);
        out = s.output();
        log = s.log();
    }
    std::remove(log_path.c_str());
    ::rmdir(dir);
    if (st != 0) std::fprintf(stderr, "status %d; stderr:\n%s\nlog:\n%s\n", st, out.c_str(), log.c_str());
    assert_int_equal(st, 0);
    // "cwsgi: stack overflow in handle() (fiber stack 64 KiB): request N GET /deep?x=1; ..."
    auto lines = [](const std::string &text) {
        static const std::string head = "cwsgi: stack overflow in handle() (fiber stack 64 KiB): request ";
        static const std::string tail = " GET /deep?x=1; raise --stack-size\n";
        int count = 0;
        for (size_t at = text.find(head); at != std::string::npos; at = text.find(head, at + 1)) {
            size_t p = at + head.size(), digits = 0;
            while (p + digits < text.size() && std::isdigit(static_cast<unsigned char>(text[p + digits]))) ++digits;
            if (digits > 0 && text.compare(p + digits, tail.size(), tail) == 0) ++count;
        }
        return count;
    };
    if (lines(out) != 1) std::fprintf(stderr, "stderr:\n%s\n", out.c_str());
    assert_int_equal(lines(out), 1);
    // The error log file gets the same line, once (the adapter hands the executor its fd).
    if (lines(log) != 1) std::fprintf(stderr, "log:\n%s\n", log.c_str());
    assert_int_equal(lines(log), 1);
}

// ---- ABI-VER-2: a 1.0 app on the 1.1 server ----------------------------------------------

void serve_v10(const char *worker_class)
{
    Serve s({"--adapter", "microhttpd", "-k", worker_class, fixture("fixture_v10.so")});
    assert_int_not_equal(s.port(), 0);
    Client c(s.port());
    for (int i = 0; i < 3; ++i) { // kept alive: one connection
        Response r = c.get("/");
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body.c_str(), "fixture\n");
    }
}

void test_exec_modes__v10_app_serves_in_both_modes(void **) // rule: ABI-VER-2, THR-5
{
    serve_v10("gthread");
    serve_v10("gevent"); // the app does not declare the promise: a warning, then it runs
}

void test_exec_modes__v10_app_checks_as_threads(void **) // rule: ABI-VER-2, LIFE-INFO-2
{
    std::string cmd = serve_binary() + " --check " + fixture("fixture_v10.so") + " 2>&1";
    FILE *p = popen(cmd.c_str(), "r");
    assert_non_null(p);
    std::string out;
    char buf[512];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    assert_int_equal(pclose(p), 0);
    if (out.find("execution:      threads (the app does not declare") == std::string::npos) {
        std::fprintf(stderr, "%s\n", out.c_str());
    }
    assert_true(out.find("execution:      threads (the app does not declare") != std::string::npos);
}

void test_exec_modes__v10_app_warns_under_gevent(void **) // rule: THR-5
{
    Serve s({"--adapter", "microhttpd", "-k", "gevent", fixture("fixture_v10.so")});
    assert_int_not_equal(s.port(), 0);
    assert_true(s.output().find("does not declare CWSGI_APP_COOPERATIVE") != std::string::npos);
}

// ---- THR-8: a SERIAL app under fibers runs one handle at a time --------------------------

struct SleepFigures {
    double total_ms = 0;
    std::string max_inside;
};

// Five concurrent /sleep (100 ms each in wait_fd), then /max.
SleepFigures five_sleeps(const char *app)
{
    SleepFigures f;
    Serve s({"--adapter", "microhttpd", "-k", "gevent", "--loop-threads", "2", fixture(app)});
    assert_int_not_equal(s.port(), 0);
    std::vector<std::unique_ptr<Client>> conns;
    for (int i = 0; i < 5; ++i) conns.push_back(std::make_unique<Client>(s.port()));
    auto t0 = Clock::now();
    for (auto &c : conns) assert_true(c->send_get("/sleep"));
    for (auto &c : conns) {
        Response r = c->read_whole(10000);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body.c_str(), "CWSGI_E_TIMEOUT");
    }
    f.total_ms = ms_since(t0);
    Client c(s.port());
    Response r = c.get("/max");
    assert_int_equal(r.status, 200);
    f.max_inside = r.body;
    std::printf("# %s: five concurrent /sleep took %.1f ms, at most %s inside at once\n", app, f.total_ms,
                f.max_inside.c_str());
    return f;
}

void test_exec_modes__serial_app_runs_one_handle_at_a_time(void **) // rule: THR-8
{
    SleepFigures f = five_sleeps("fixture_exec_serial.so");
    assert_string_equal(f.max_inside.c_str(), "1");
    assert_true(f.total_ms >= 450); // 5 x 100 ms, one after the other
    assert_true(f.total_ms < 2000);
}

void test_exec_modes__safe_app_overlaps_its_sleeps(void **) // rule: THR-4, THR-6
{
    // The contrast: the same handle in a SAFE app sleeps five times at once.
    SleepFigures f = five_sleeps("fixture_exec.so");
    assert_string_equal(f.max_inside.c_str(), "5");
    assert_true(f.total_ms < 400);
}

// ---- LIFE-STOP-5: the graceful deadline ends a wait_fd -----------------------------------

void test_exec_modes__deadline_ends_wait_fd(void **) // rule: LIFE-STOP-5
{
    Serve s({"--adapter", "microhttpd", "-k", "gevent", "--graceful-timeout", "1", fixture("fixture_exec.so")});
    assert_int_not_equal(s.port(), 0);
    Client c(s.port());
    assert_true(c.send_get("/wait"));
    assert_true(s.wait_for("wait: started", 5000));
    auto t0 = Clock::now();
    assert_int_equal(::kill(s.pid(), SIGTERM), 0);
    bool woken = s.wait_for("wait: wait_fd returned CWSGI_E_SHUTDOWN", 5000);
    double ms = ms_since(t0);
    if (!woken) std::fprintf(stderr, "output:\n%s\n", s.output().c_str());
    assert_true(woken);
    std::printf("# wait_fd returned CWSGI_E_SHUTDOWN %.1f ms after SIGTERM (--graceful-timeout 1)\n", ms);
    assert_true(ms >= 900); // not before the deadline
    assert_true(ms < 2000); // within ~1 s of it
    int st = s.wait_exit(5000);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        std::fprintf(stderr, "status %d\n%s\n", st, s.output().c_str());
    assert_true(st != -1 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

// ---- THR-9: on_request_end runs in the app's context, never on the loop's stack ------------

void test_exec_modes__request_end_runs_in_the_app_context(void **) // rule: THR-9
{
    {
        // Cooperative: on a fiber (a stack that is not the loop thread's own).
        Serve s({"--adapter", "microhttpd", "-k", "gevent", fixture("fixture_exec.so")});
        assert_int_not_equal(s.port(), 0);
        Client c(s.port());
        assert_int_equal(c.get("/end").status, 200);
        assert_true(s.wait_for("end: fiber=1", 5000));
    }
    {
        // Threads: on a pool thread, never on one of libmicrohttpd's loop threads.
        Serve s({"--adapter", "microhttpd", "-k", "gthread", fixture("fixture_exec.so")});
        assert_int_not_equal(s.port(), 0);
        Client c(s.port());
        assert_int_equal(c.get("/end").status, 200);
        assert_true(s.wait_for("end: fiber=0 thread=cwsgi-app", 5000));
    }
}

} // namespace

int main()
{
    alarm(110); // a hung server fails the run; ctest's timeout is the outer bound
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exec_modes__spin_stalls_only_its_loop_thread),
        cmocka_unit_test(test_exec_modes__spin_stalls_a_single_loop_thread),
        cmocka_unit_test(test_exec_modes__stack_overflow_names_the_request),
        cmocka_unit_test(test_exec_modes__v10_app_serves_in_both_modes),
        cmocka_unit_test(test_exec_modes__v10_app_checks_as_threads),
        cmocka_unit_test(test_exec_modes__v10_app_warns_under_gevent),
        cmocka_unit_test(test_exec_modes__serial_app_runs_one_handle_at_a_time),
        cmocka_unit_test(test_exec_modes__safe_app_overlaps_its_sleeps),
        cmocka_unit_test(test_exec_modes__deadline_ends_wait_fd),
        cmocka_unit_test(test_exec_modes__request_end_runs_in_the_app_context),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
