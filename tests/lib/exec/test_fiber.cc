// test_fiber.cc: fibers and their stacks (lib/exec/fiber.hh): jobs, yields, reuse without
// mapping, errno and exception state kept per fiber, the thread binding, deep stacks switched
// many times, and, in child processes, the stack-overflow report and the faults that are not
// ours. Clean under -fsanitize=address,undefined too (CWSGI_SANITIZE=ON).
#include "cmocka.hh"

#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "exec/fiber.hh"

using namespace cwsgi::exec;

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

namespace {

// ---- jobs and yields ---------------------------------------------------------------------

struct Trace {
    std::string log;
    Fiber *seen_current = nullptr;
};

void three_steps(void *arg)
{
    auto *t = static_cast<Trace *>(arg);
    t->seen_current = Fiber::current();
    t->log += 'a';
    Fiber::yield();
    t->log += 'b';
    Fiber::yield();
    t->log += 'c';
}

void test_fiber__job_runs_until_yield_and_finishes(void **)
{
    StackPool pool;
    Fiber f(pool);
    Trace t;
    assert_true(f.done());
    assert_false(f.resume()); // nothing to run yet
    assert_true(f.start(&three_steps, &t));
    assert_false(f.done());
    assert_false(f.start(&three_steps, &t)); // one job at a time
    assert_null(Fiber::current());
    assert_true(f.resume());
    assert_string_equal(t.log.c_str(), "a");
    assert_ptr_equal(t.seen_current, &f);
    assert_null(Fiber::current());
    assert_false(f.done());
    assert_true(f.resume());
    assert_string_equal(t.log.c_str(), "ab");
    assert_true(f.resume());
    assert_string_equal(t.log.c_str(), "abc");
    assert_true(f.done());
    assert_false(f.resume()); // finished: nothing to resume
}

void count_up(void *arg) { ++*static_cast<uint64_t *>(arg); }

void test_fiber__reuse_maps_nothing_in_steady_state(void **)
{
    StackPool pool(64 * 1024, 2);
    uint64_t n = 0;
    {
        Fiber f(pool);
        for (int i = 0; i < 10000; ++i) {
            assert_true(f.start(&count_up, &n));
            assert_true(f.resume());
            assert_true(f.done());
        }
    }
    assert_int_equal(n, 10000);
    assert_int_equal(pool.maps(), 1);
    assert_int_equal(pool.kept(), 1); // the destroyed fiber's stack, kept
    // Fibers that come and go take the kept stack; only the second live one maps.
    for (int i = 0; i < 100; ++i) {
        Fiber a(pool), b(pool);
        assert_true(a.start(&count_up, &n));
        assert_true(b.start(&count_up, &n));
        assert_true(a.resume());
        assert_true(b.resume());
    }
    assert_int_equal(pool.maps(), 2);
    assert_int_equal(pool.kept(), 2);
}

void test_fiber__pool_keeps_at_most_its_cap(void **)
{
    StackPool pool(4096, 2);
    assert_int_equal(pool.stack_size(), static_cast<size_t>(sysconf(_SC_PAGESIZE)));
    assert_int_equal(StackPool(5000).stack_size() % sysconf(_SC_PAGESIZE), 0);
    {
        std::unique_ptr<Fiber> f[4];
        uint64_t n = 0;
        for (auto &p : f) {
            p = std::make_unique<Fiber>(pool);
            assert_true(p->start(&count_up, &n));
        }
        assert_int_equal(pool.maps(), 4);
    }
    assert_int_equal(pool.kept(), 2); // the other two were unmapped
}

void use_most_of_the_stack(void *arg)
{
    // 200 KiB of a 256 KiB stack in one frame: the usable part is there, writable, and the
    // guard is below it, not inside.
    volatile char big[200 * 1024];
    for (size_t i = 0; i < sizeof big; i += 4096) big[i] = 1;
    big[sizeof big - 1] = 1;
    *static_cast<int *>(arg) = big[0] + big[sizeof big - 1];
}

void test_fiber__destroying_a_parked_or_unrun_fiber_is_clean(void **)
{
    StackPool pool;
    Trace t;
    {
        Fiber never(pool);
        assert_true(never.start(&three_steps, &t)); // started, never resumed: dropped
    }
    assert_string_equal(t.log.c_str(), "");
    {
        Fiber parked(pool);
        int sum = 0;
        assert_true(parked.start(&use_most_of_the_stack, &sum));
        assert_true(parked.resume());
        assert_true(parked.done());
        assert_int_equal(sum, 2);
    }
    assert_int_equal(pool.kept(), 1);
}

// ---- per-fiber errno -----------------------------------------------------------------------

struct ErrnoProbe {
    int set;
    int seen_at_start = -1;
    int seen_after_yield = -1;
};

void errno_job(void *arg)
{
    auto *p = static_cast<ErrnoProbe *>(arg);
    p->seen_at_start = errno;
    errno = p->set;
    Fiber::yield();
    p->seen_after_yield = errno;
    errno = p->set + 100; // left behind at the end: must not reach the loop either
}

void test_fiber__errno_is_per_fiber(void **)
{
    StackPool pool;
    Fiber a(pool), b(pool);
    ErrnoProbe pa{EINTR}, pb{EAGAIN};
    assert_true(a.start(&errno_job, &pa));
    assert_true(b.start(&errno_job, &pb));
    errno = EBADF;
    assert_true(a.resume());
    assert_int_equal(errno, EBADF); // the loop's errno is back
    assert_true(b.resume());
    assert_int_equal(errno, EBADF);
    errno = ENOENT;
    assert_true(a.resume());
    assert_int_equal(errno, ENOENT);
    assert_true(b.resume());
    assert_int_equal(errno, ENOENT);
    assert_int_equal(pa.seen_at_start, 0); // a fiber starts with errno 0, not the loop's
    assert_int_equal(pb.seen_at_start, 0);
    assert_int_equal(pa.seen_after_yield, EINTR); // its own, not b's nor the loop's
    assert_int_equal(pb.seen_after_yield, EAGAIN);
}

// ---- thread binding ------------------------------------------------------------------------

struct NestProbe {
    Fiber *other;
    bool refused = false;
};

void try_nested_resume(void *arg)
{
    auto *p = static_cast<NestProbe *>(arg);
    p->refused = !p->other->resume();
}

void test_fiber__resume_on_another_thread_is_refused(void **)
{
    StackPool pool;
    Fiber f(pool);
    Trace t;
    assert_true(f.start(&three_steps, &t));
    bool resumed = true, started = true;
    std::thread([&] { resumed = f.resume(); }).join();
    assert_false(resumed);
    assert_string_equal(t.log.c_str(), ""); // nothing ran
    assert_true(f.resume());                // its own thread still can
    assert_string_equal(t.log.c_str(), "a");
    std::thread([&] { resumed = f.resume(); }).join(); // refused while suspended too
    assert_false(resumed);
    while (!f.done()) assert_true(f.resume());
    std::thread([&] { started = f.start(&three_steps, &t); }).join();
    assert_false(started);
    assert_true(f.done());

    Fiber g(pool);
    NestProbe probe{&g};
    Trace tg;
    assert_true(g.start(&three_steps, &tg));
    assert_true(f.start(&try_nested_resume, &probe));
    assert_true(f.resume());
    assert_true(probe.refused);
    assert_string_equal(tg.log.c_str(), "");
    while (!g.done()) assert_true(g.resume());
}

// ---- exceptions ----------------------------------------------------------------------------

struct ExcProbe {
    int id;
    int caught = -1;   // the value the first catch saw
    int rethrown = -1; // what `throw;` after a yield inside the catch rethrew
    int current = -1;  // what std::current_exception() said after the yield
    int uncaught_in_catch = -1;
};

void exception_job(void *arg)
{
    auto *p = static_cast<ExcProbe *>(arg);
    try {
        try {
            Fiber::yield(); // a switch inside a try block
            throw std::runtime_error(std::to_string(p->id));
        } catch (const std::runtime_error &e) {
            p->caught = std::stoi(e.what());
            // Yield inside the catch block, as a handle() that writes its error page does:
            // the other fiber catches its own exception meanwhile.
            Fiber::yield();
            p->uncaught_in_catch = std::uncaught_exceptions();
            try {
                std::rethrow_exception(std::current_exception());
            } catch (const std::runtime_error &cur) {
                p->current = std::stoi(cur.what());
            }
            throw;
        }
    } catch (const std::runtime_error &e) {
        p->rethrown = std::stoi(e.what());
    }
}

void test_fiber__exceptions_stay_in_their_fiber(void **)
{
    StackPool pool;
    Fiber a(pool), b(pool);
    ExcProbe pa{1}, pb{2};
    assert_true(a.start(&exception_job, &pa));
    assert_true(b.start(&exception_job, &pb));
    // Interleave: a and b each stop inside their own catch block before the other leaves it.
    for (int round = 0; round < 3; ++round) {
        if (!a.done()) assert_true(a.resume());
        if (!b.done()) assert_true(b.resume());
    }
    assert_true(a.done());
    assert_true(b.done());
    assert_int_equal(pa.caught, 1);
    assert_int_equal(pb.caught, 2);
    assert_int_equal(pa.current, 1);
    assert_int_equal(pb.current, 2);
    assert_int_equal(pa.rethrown, 1);
    assert_int_equal(pb.rethrown, 2);
    assert_int_equal(pa.uncaught_in_catch, 0);
    assert_int_equal(pb.uncaught_in_catch, 0);
    // The loop's own exception state is untouched.
    assert_true(std::current_exception() == nullptr);
    try {
        throw std::logic_error("loop");
    } catch (const std::logic_error &) {
        assert_true(a.start(&exception_job, &pa));
        while (!a.done()) assert_true(a.resume());
        assert_true(std::current_exception() != nullptr); // still the loop's, after the fiber's
        try {
            throw;
        } catch (const std::logic_error &e) {
            assert_string_equal(e.what(), "loop");
        }
    }
}

// ---- deep stacks, many switches --------------------------------------------------------

// Recurses `depth` levels with a 1 KiB frame each, yielding at every level on the way down and
// up; returns a checksum of the frames so that none can be optimised away.
__attribute__((noinline)) uint64_t deep(int depth, uint64_t seed)
{
    volatile unsigned char frame[1024];
    for (size_t i = 0; i < sizeof frame; i += 64) frame[i] = static_cast<unsigned char>(seed + i);
    Fiber::yield();
    uint64_t below = depth > 0 ? deep(depth - 1, seed * 31 + 7) : 0;
    Fiber::yield();
    uint64_t sum = below;
    for (size_t i = 0; i < sizeof frame; i += 64) sum += frame[i];
    return sum;
}

uint64_t deep_expected(int depth, uint64_t seed)
{
    uint64_t sum = depth > 0 ? deep_expected(depth - 1, seed * 31 + 7) : 0;
    for (size_t i = 0; i < 1024; i += 64) sum += static_cast<unsigned char>(seed + i);
    return sum;
}

struct DeepJob {
    int depth;
    uint64_t seed;
    uint64_t result = 0;
};

void deep_job(void *arg)
{
    auto *j = static_cast<DeepJob *>(arg);
    j->result = deep(j->depth, j->seed);
}

void test_fiber__deep_stacks_switch_many_times(void **)
{
    // 8 fibers, each ~150 frames of 1 KiB+ deep (most of a 256 KiB stack under ASan's larger
    // frames), resumed round robin: ~2400 switches each, with every stack live at once.
    constexpr int kFibers = 8, kDepth = 150;
    StackPool pool;
    std::unique_ptr<Fiber> f[kFibers];
    DeepJob jobs[kFibers];
    for (int i = 0; i < kFibers; ++i) {
        jobs[i] = DeepJob{kDepth, static_cast<uint64_t>(i + 1)};
        f[i] = std::make_unique<Fiber>(pool);
        assert_true(f[i]->start(&deep_job, &jobs[i]));
    }
    uint64_t switches = 0;
    for (bool any = true; any;) {
        any = false;
        for (auto &p : f) {
            if (p->done()) continue;
            assert_true(p->resume());
            ++switches;
            any = true;
        }
    }
    for (int i = 0; i < kFibers; ++i)
        assert_true(jobs[i].result == deep_expected(kDepth, static_cast<uint64_t>(i + 1)));
    assert_true(switches >= kFibers * 2 * (kDepth + 1));
}

// ---- cost (printed, not asserted: a unit test must not fail on a busy machine) -------------

constexpr uint64_t kStop = ~uint64_t{0};

void yield_until_stop(void *arg)
{
    auto *n = static_cast<uint64_t *>(arg);
    for (;;) {
        ++*n;
        Fiber::yield();
        if (*n == kStop) return;
    }
}

void test_fiber__cost_is_printed(void **)
{
    constexpr int kRounds = 1000000;
    StackPool pool;
    Fiber f(pool);
    uint64_t n = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kRounds; ++i) {
        f.start(&count_up, &n);
        f.resume();
    }
    auto t1 = std::chrono::steady_clock::now();
    assert_int_equal(n, kRounds);
    Fiber g(pool);
    uint64_t y = 0;
    assert_true(g.start(&yield_until_stop, &y));
    auto t2 = std::chrono::steady_clock::now();
    for (int i = 0; i < kRounds; ++i) g.resume();
    auto t3 = std::chrono::steady_clock::now();
    assert_int_equal(y, kRounds);
    auto ns = [](auto d) { return std::chrono::duration<double, std::nano>(d).count() / kRounds; };
    std::printf("fiber cost: start+finish %.1f ns per job, yield+resume %.1f ns per round trip\n", ns(t1 - t0),
                ns(t3 - t2));
    // g stays suspended inside its job: finish it so that it can be destroyed.
    y = kStop;
    assert_true(g.resume());
    assert_true(g.done());
}

// ---- crashes, in child processes ------------------------------------------------------------

struct Child {
    int status = 0;
    std::string err; // the child's stderr
    std::string log; // what it wrote to the overflow log fd
};

std::string drain(int fd)
{
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

// Runs the child body `name` (see kChildren) in a fresh process: this binary again, with
// stderr and fd 3 (the overflow log) captured. Fresh, because CMocka puts its own SIGSEGV
// handler in place around every test, and a forked child would inherit it (and our handler,
// installed once per process, chained to CMocka's).
Child run_child(const char *name)
{
    int err[2], log[2];
    if (pipe(err) != 0 || pipe(log) != 0) std::abort();
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit no_core {
            0, 0
        };
        setrlimit(RLIMIT_CORE, &no_core); // a crash on purpose needs no core file
        dup2(err[1], 2);
        dup2(log[1], 3);
        execl("/proc/self/exe", "test_exec_fiber", "--child", name, static_cast<char *>(nullptr));
        _exit(127);
    }
    close(err[1]);
    close(log[1]);
    Child c;
    // Small outputs: read one pipe to its end, then the other, then reap.
    c.err = drain(err[0]);
    c.log = drain(log[0]);
    close(err[0]);
    close(log[0]);
    waitpid(pid, &c.status, 0);
    return c;
}

__attribute__((noinline)) int overflow(int n)
{
    volatile char frame[1024];
    frame[0] = static_cast<char>(n);
    frame[sizeof frame - 1] = static_cast<char>(n);
    if (n > 100000000) return 0; // never: keeps the compiler from calling this infinite
    return overflow(n + 1) + frame[n % sizeof frame];
}

void overflow_job(void *) { overflow(0); }

void describe_request(void *arg, DescribeBuf &out)
{
    out.put("request ");
    out.put(static_cast<uint64_t>(*static_cast<int *>(arg)));
    out.put(" GET /deep");
}

void overflow_child()
{
    static int request_id = 42;
    Fiber::set_overflow_log_fd(3);
    StackPool pool;
    Fiber f(pool);
    f.set_describer(&describe_request, &request_id);
    f.start(&overflow_job, nullptr);
    f.resume();
}

void test_fiber__overflow_is_reported_with_the_request(void **)
{
    Child c = run_child("overflow");
    assert_true(WIFSIGNALED(c.status));
    assert_int_equal(WTERMSIG(c.status), SIGSEGV);
    const char *line = "cwsgi: stack overflow in handle() (fiber stack 256 KiB): request 42 GET /deep; "
                       "raise --stack-size\n";
    if (c.err.find(line) == std::string::npos) std::fprintf(stderr, "child stderr: %s\n", c.err.c_str());
    assert_true(c.err.find(line) != std::string::npos);
    assert_string_equal(c.log.c_str(), line); // the log fd gets the same line, once
}

void bad_write_job(void *arg) { *static_cast<volatile int *>(arg) = 1; }

// A fault on the fiber, but not in its guard: a write to a PROT_NONE page of our own (not a
// null pointer, which UBSan would stop before the fault).
void bad_write_on_fiber()
{
    void *page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    StackPool pool;
    Fiber f(pool);
    f.start(&bad_write_job, page);
    f.resume(); // installs the handler, then faults
}

bool killed_by_segv(const Child &c)
{
#if defined(UNDER_ASAN)
    // ASan's own handler was there first, so it gets the fault: it reports (a SEGV, or a
    // "stack-overflow" when the page happens to lie near the stack pointer) and exits 1.
    if (WIFEXITED(c.status) && WEXITSTATUS(c.status) != 0 &&
        c.err.find("ERROR: AddressSanitizer:") != std::string::npos && c.err.find("bad_write_job") != std::string::npos)
        return true;
#endif
    return WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGSEGV;
}

void test_fiber__other_faults_crash_as_before(void **)
{
    Child c = run_child("bad_write");
    if (!killed_by_segv(c)) std::fprintf(stderr, "child status %#x, stderr: %s\n", c.status, c.err.c_str());
    assert_true(killed_by_segv(c));
    assert_true(c.err.find("stack overflow") == std::string::npos);
    assert_true(c.log.empty());
}

void app_handler(int)
{
    const char msg[] = "app handler\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(7);
}

void chained_child()
{
    // A handler installed before the fibers' is still the one that handles other faults.
    signal(SIGSEGV, &app_handler);
    bad_write_on_fiber();
}

void test_fiber__earlier_handler_still_gets_other_faults(void **)
{
    Child c = run_child("chained");
    assert_true(WIFEXITED(c.status));
    assert_int_equal(WEXITSTATUS(c.status), 7);
    assert_true(c.err.find("app handler") != std::string::npos);
}

void destroy_suspended_child()
{
    StackPool pool;
    Trace t;
    auto f = std::make_unique<Fiber>(pool);
    f->start(&three_steps, &t);
    f->resume();
    f.reset(); // a job in progress: refused loudly
}

void test_fiber__destroying_a_suspended_fiber_aborts(void **)
{
    Child c = run_child("destroy_suspended");
    assert_true(WIFSIGNALED(c.status));
    assert_int_equal(WTERMSIG(c.status), SIGABRT);
    assert_true(c.err.find("cwsgi: Fiber destroyed with a job in progress") != std::string::npos);
}

struct ChildBody {
    const char *name;
    void (*body)();
} const kChildren[] = {
    {"overflow", &overflow_child},
    {"bad_write", &bad_write_on_fiber},
    {"chained", &chained_child},
    {"destroy_suspended", &destroy_suspended_child},
};

} // namespace

int main(int argc, char **argv)
{
    if (argc == 3 && std::strcmp(argv[1], "--child") == 0) {
        for (const ChildBody &c : kChildren) {
            if (std::strcmp(argv[2], c.name) == 0) {
                c.body();
                return 0;
            }
        }
        return 126;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fiber__job_runs_until_yield_and_finishes),
        cmocka_unit_test(test_fiber__reuse_maps_nothing_in_steady_state),
        cmocka_unit_test(test_fiber__pool_keeps_at_most_its_cap),
        cmocka_unit_test(test_fiber__destroying_a_parked_or_unrun_fiber_is_clean),
        cmocka_unit_test(test_fiber__errno_is_per_fiber),
        cmocka_unit_test(test_fiber__resume_on_another_thread_is_refused),
        cmocka_unit_test(test_fiber__exceptions_stay_in_their_fiber),
        cmocka_unit_test(test_fiber__deep_stacks_switch_many_times),
        cmocka_unit_test(test_fiber__cost_is_printed),
        cmocka_unit_test(test_fiber__overflow_is_reported_with_the_request),
        cmocka_unit_test(test_fiber__other_faults_crash_as_before),
        cmocka_unit_test(test_fiber__earlier_handler_still_gets_other_faults),
        cmocka_unit_test(test_fiber__destroying_a_suspended_fiber_aborts),
    };
    return cmocka_run_group_tests_name("exec_fiber", tests, nullptr, nullptr);
}
