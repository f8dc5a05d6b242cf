// test_executor.cc: exec::Executor and exec::Task, driven the way an adapter drives them, with a
// fake loop on the test's own thread: start, notify, run_pending, wait_fd, the SERIAL turn, the
// graceful deadline and orphaned requests, in both modes (THR-5, THR-6, THR-8, LIFE-STOP-5).
#include "cmocka.hh"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "cwsgi.h"
#include "exec/executor.hh"

using namespace cwsgi;
using namespace std::chrono_literals;

namespace {

/// One fake request: what an adapter keeps per request, and its hooks.
struct FakeRequest {
    std::mutex mu;
    bool ready = false;                // what the app side waits for
    std::atomic<int> wakes{0};         // hook_wake calls (from any thread)
    std::atomic<int> done{0};          // hook_done calls
    std::atomic<int> refs{1};
    int32_t result = 0;                // what the job saw
    int fd = -1;                       // for wait_fd jobs
    int32_t timeout_ms = -1;
    int inside = 0;                    // for the SERIAL job
    static std::atomic<int> serial_now, serial_max;
    exec::Task *task = nullptr;
};
std::atomic<int> FakeRequest::serial_now{0};
std::atomic<int> FakeRequest::serial_max{0};

void hook_wake(void *p) { static_cast<FakeRequest *>(p)->wakes.fetch_add(1); }
void hook_done(void *p) { static_cast<FakeRequest *>(p)->done.fetch_add(1); }
void hook_hold(void *p) { static_cast<FakeRequest *>(p)->refs.fetch_add(1); }
void hook_release(void *p) { static_cast<FakeRequest *>(p)->refs.fetch_sub(1); }
const exec::Task::Hooks kHooks = {hook_wake, hook_done, hook_hold, hook_release, nullptr};

// Jobs, run in the app's context (pool thread or fiber).
void job_wait_ready(void *p, int32_t)
{
    auto *r = static_cast<FakeRequest *>(p);
    std::unique_lock<std::mutex> lk(r->mu);
    r->task->wait(lk, [&] { return r->ready; });
    r->result = 1;
}

void job_wait_fd(void *p, int32_t)
{
    auto *r = static_cast<FakeRequest *>(p);
    r->result = r->task->wait_fd(r->fd, r->fd >= 0 ? CWSGI_WAIT_READ : 0, r->timeout_ms);
}

void job_serial(void *p, int32_t)
{
    auto *r = static_cast<FakeRequest *>(p);
    int now = FakeRequest::serial_now.fetch_add(1) + 1;
    int max = FakeRequest::serial_max.load();
    while (now > max && !FakeRequest::serial_max.compare_exchange_weak(max, now)) {
    }
    r->result = r->task->wait_fd(-1, 0, 50); // yields while it holds the turn
    FakeRequest::serial_now.fetch_sub(1);
}

exec::Executor::Options opts(core::ExecMode mode, bool serial = false)
{
    exec::Executor::Options o;
    o.mode = mode;
    o.threads = 2;
    o.serial = serial;
    return o;
}

/// The fake loop: runs every request's pending step until `cond` holds or 5 s pass.
template <class Cond>
bool loop_until(std::initializer_list<FakeRequest *> reqs, Cond cond)
{
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!cond()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        for (FakeRequest *r : reqs) r->task->run_pending();
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

void test_executor__cooperative_runs_inline_until_it_waits(void **) // rule: THR-5
{
    exec::Executor ex(opts(core::ExecMode::cooperative));
    ex.start();
    FakeRequest r;
    exec::Task task(ex, kHooks, &r);
    r.task = &task;
    assert_true(task.prepare());
    task.start(job_wait_ready, &r);
    // The job ran on this thread up to its wait and yielded back here: not done.
    assert_int_equal(r.done.load(), 0);
    assert_int_equal(r.result, 0);
    task.run_pending(); // nothing notified: the fiber stays parked
    assert_int_equal(r.done.load(), 0);
    {
        std::lock_guard<std::mutex> lk(r.mu);
        r.ready = true;
        task.notify();
    }
    task.run_pending(); // "it can progress": the fiber finishes here
    assert_int_equal(r.result, 1);
    assert_int_equal(r.done.load(), 1);
}

void test_executor__threads_mode_waits_on_a_pool_thread(void **) // rule: THR-5
{
    exec::Executor ex(opts(core::ExecMode::threads));
    ex.start();
    FakeRequest r;
    exec::Task task(ex, kHooks, &r);
    r.task = &task;
    task.start(job_wait_ready, &r);
    std::this_thread::sleep_for(20ms);
    assert_int_equal(r.done.load(), 0);
    {
        std::lock_guard<std::mutex> lk(r.mu);
        r.ready = true;
        task.notify();
    }
    assert_true(loop_until({&r}, [&] { return r.done.load() == 1; }));
    assert_int_equal(r.result, 1);
    assert_true(ex.stop(1000ms));
}

void test_executor__wait_fd_yields_until_ready(void **) // rule: THR-6
{
    exec::Executor ex(opts(core::ExecMode::cooperative));
    ex.start();
    int p[2];
    assert_int_equal(::pipe2(p, O_CLOEXEC), 0);
    // Two requests on the same descriptor both wait (the second through a duplicate).
    FakeRequest a, b;
    exec::Task ta(ex, kHooks, &a), tb(ex, kHooks, &b);
    a.task = &ta;
    b.task = &tb;
    a.fd = b.fd = p[0];
    ta.start(job_wait_fd, &a);
    tb.start(job_wait_fd, &b);
    assert_int_equal(a.done.load() + b.done.load(), 0);
    std::thread writer([&] {
        std::this_thread::sleep_for(30ms);
        char c = 'x';
        assert_int_equal(::write(p[1], &c, 1), 1);
    });
    // The watcher wakes each request through its hook; the loop then runs it.
    assert_true(loop_until({&a, &b}, [&] { return a.done.load() == 1 && b.done.load() == 1; }));
    writer.join();
    assert_int_equal(a.result, CWSGI_WAIT_READ);
    assert_int_equal(b.result, CWSGI_WAIT_READ);
    assert_true(a.wakes.load() >= 1 && b.wakes.load() >= 1);
    assert_int_equal(a.refs.load(), 1); // every hold was released
    ::close(p[0]);
    ::close(p[1]);
}

void test_executor__wait_fd_timeout_and_sleep(void **) // rule: THR-6
{
    for (core::ExecMode mode : {core::ExecMode::cooperative, core::ExecMode::threads}) {
        exec::Executor ex(opts(mode));
        ex.start();
        int p[2];
        assert_int_equal(::pipe2(p, O_CLOEXEC), 0);
        FakeRequest a, s;
        exec::Task ta(ex, kHooks, &a), ts(ex, kHooks, &s);
        a.task = &ta;
        s.task = &ts;
        a.fd = p[0];
        a.timeout_ms = 40;
        s.fd = -1; // a sleep that keeps the promise
        s.timeout_ms = 40;
        auto t0 = std::chrono::steady_clock::now();
        ta.start(job_wait_fd, &a);
        ts.start(job_wait_fd, &s);
        assert_true(loop_until({&a, &s}, [&] { return a.done.load() == 1 && s.done.load() == 1; }));
        auto took = std::chrono::steady_clock::now() - t0;
        assert_int_equal(a.result, CWSGI_E_TIMEOUT);
        assert_int_equal(s.result, CWSGI_E_TIMEOUT);
        assert_true(took >= 35ms);
        ::close(p[0]);
        ::close(p[1]);
        assert_true(ex.stop(1000ms));
    }
}

void test_executor__deadline_ends_waits_with_shutdown(void **) // rule: LIFE-STOP-5
{
    for (core::ExecMode mode : {core::ExecMode::cooperative, core::ExecMode::threads}) {
        exec::Executor ex(opts(mode));
        ex.start();
        FakeRequest r;
        exec::Task task(ex, kHooks, &r);
        r.task = &task;
        r.fd = -1;
        r.timeout_ms = 60000;
        task.start(job_wait_fd, &r);
        std::this_thread::sleep_for(20ms);
        ex.hard_stop();
        assert_true(loop_until({&r}, [&] { return r.done.load() == 1; }));
        assert_int_equal(r.result, CWSGI_E_SHUTDOWN);
        assert_true(ex.stop(1000ms));
    }
}

void test_executor__orphan_ends_the_wait(void **) // rule: THR-6
{
    exec::Executor ex(opts(core::ExecMode::cooperative));
    ex.start();
    FakeRequest r;
    exec::Task task(ex, kHooks, &r);
    r.task = &task;
    r.fd = -1;
    r.timeout_ms = 60000;
    task.start(job_wait_fd, &r);
    assert_int_equal(r.done.load(), 0);
    // The engine will not call this request back: its wait ends now, with the reason.
    task.orphan(CWSGI_E_DISCONNECTED);
    task.run_pending();
    assert_int_equal(r.done.load(), 1);
    assert_int_equal(r.result, CWSGI_E_DISCONNECTED);
}

void test_executor__serial_app_runs_one_at_a_time(void **) // rule: THR-8
{
    exec::Executor ex(opts(core::ExecMode::cooperative, true));
    ex.start();
    FakeRequest::serial_now = 0;
    FakeRequest::serial_max = 0;
    FakeRequest r[3];
    exec::Task t0(ex, kHooks, &r[0]), t1(ex, kHooks, &r[1]), t2(ex, kHooks, &r[2]);
    exec::Task *tasks[3] = {&t0, &t1, &t2};
    for (int i = 0; i < 3; ++i) {
        r[i].task = tasks[i];
        tasks[i]->start(job_serial, &r[i]);
    }
    auto t_start = std::chrono::steady_clock::now();
    assert_true(loop_until({&r[0], &r[1], &r[2]},
                           [&] { return r[0].done.load() + r[1].done.load() + r[2].done.load() == 3; }));
    auto took = std::chrono::steady_clock::now() - t_start;
    assert_int_equal(FakeRequest::serial_max.load(), 1); // never two inside at once
    assert_true(took >= 140ms);                           // three 50 ms turns, one after another
    for (auto &x : r) assert_int_equal(x.result, CWSGI_E_TIMEOUT);
}

} // namespace

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_executor__cooperative_runs_inline_until_it_waits),
        cmocka_unit_test(test_executor__threads_mode_waits_on_a_pool_thread),
        cmocka_unit_test(test_executor__wait_fd_yields_until_ready),
        cmocka_unit_test(test_executor__wait_fd_timeout_and_sleep),
        cmocka_unit_test(test_executor__deadline_ends_waits_with_shutdown),
        cmocka_unit_test(test_executor__orphan_ends_the_wait),
        cmocka_unit_test(test_executor__serial_app_runs_one_at_a_time),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
