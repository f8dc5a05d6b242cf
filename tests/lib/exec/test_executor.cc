// test_executor.cc: exec::Executor and exec::Task, driven the way an adapter drives them, with a
// fake loop on the test's own thread: start, notify, run_pending, wait_fd, the SERIAL turn, the
// graceful deadline and orphaned requests, in the three modes (THR-5, THR-6, THR-8, THR-10,
// LIFE-STOP-5).
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
    bool ready = false;        // what the app side waits for
    std::atomic<int> wakes{0}; // hook_wake calls (from any thread)
    std::atomic<int> done{0};  // hook_done calls
    std::atomic<int> refs{1};
    int32_t result = 0; // what the job saw
    int fd = -1;        // for wait_fd jobs
    int32_t timeout_ms = -1;
    int inside = 0; // for the SERIAL job
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
template <class Cond> bool loop_until(std::initializer_list<FakeRequest *> reqs, Cond cond)
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
    assert_true(
        loop_until({&r[0], &r[1], &r[2]}, [&] { return r[0].done.load() + r[1].done.load() + r[2].done.load() == 3; }));
    auto took = std::chrono::steady_clock::now() - t_start;
    assert_int_equal(FakeRequest::serial_max.load(), 1); // never two inside at once
    assert_true(took >= 140ms);                          // three 50 ms turns, one after another
    for (auto &x : r) assert_int_equal(x.result, CWSGI_E_TIMEOUT);
}

// ---- sync mode (THR-10) ------------------------------------------------------------------------

/// A sync request's block hook: counts its calls, records the thread, and after `blocks_needed`
/// calls makes the wait's condition true, as an adapter's would once the socket moved.
struct SyncRequest : FakeRequest {
    int blocks = 0;
    int blocks_needed = 3;
    std::thread::id block_thread;
    std::thread::id job_thread;
};

void sync_block(void *p)
{
    auto *r = static_cast<SyncRequest *>(p);
    r->block_thread = std::this_thread::get_id();
    // Called with no lock held: the hook takes the adapter's lock itself.
    std::lock_guard<std::mutex> lk(r->mu);
    if (++r->blocks >= r->blocks_needed) r->ready = true;
}

const exec::Task::Hooks kSyncHooks = {hook_wake, hook_done, hook_hold, hook_release, nullptr, sync_block};

void job_sync_wait(void *p, int32_t value)
{
    auto *r = static_cast<SyncRequest *>(p);
    r->job_thread = std::this_thread::get_id();
    std::unique_lock<std::mutex> lk(r->mu);
    r->task->wait(lk, [&] { return r->ready; });
    r->result = value;
}

void job_sync_wait_once(void *p, int32_t)
{
    auto *r = static_cast<SyncRequest *>(p);
    std::unique_lock<std::mutex> lk(r->mu);
    while (!r->ready) r->task->wait_once(lk);
    r->result = 1;
}

exec::Executor::Options sync_opts(bool inline_sync)
{
    exec::Executor::Options o = opts(core::ExecMode::sync);
    o.inline_sync = inline_sync;
    return o;
}

void test_executor__sync_runs_inline_to_the_end(void **) // rule: THR-10
{
    exec::Executor ex(sync_opts(true));
    ex.start();
    assert_true(ex.sync());
    SyncRequest r;
    exec::Task task(ex, kSyncHooks, &r);
    r.task = &task;
    assert_true(task.prepare());
    task.start(job_sync_wait, &r, 7);
    // No hand-off: the job, its waits (each one call of the block hook, until the condition
    // held) and the done hook all ran on this thread before start() returned.
    assert_int_equal(r.result, 7);
    assert_int_equal(r.blocks, 3);
    assert_int_equal(r.done.load(), 1);
    assert_true(r.job_thread == std::this_thread::get_id());
    assert_true(r.block_thread == std::this_thread::get_id());
    // The loop's calls are no-ops for a sync Task: nothing is pending, nothing wakes.
    task.notify();
    task.run_pending();
    assert_int_equal(r.wakes.load(), 0);
    assert_int_equal(r.done.load(), 1);
    // A second job on the same Task (a keep-alive connection's next request, or its end).
    r.ready = false;
    r.blocks = 0;
    r.blocks_needed = 1;
    task.start(job_sync_wait_once, &r);
    assert_int_equal(r.result, 1);
    assert_int_equal(r.blocks, 1);
    assert_int_equal(r.done.load(), 2);
    assert_true(ex.stop(100ms));
}

void test_executor__sync_wait_that_holds_does_not_block(void **) // rule: THR-10
{
    exec::Executor ex(sync_opts(true));
    ex.start();
    SyncRequest r;
    r.ready = true; // the bytes are there already: no call of the block hook
    exec::Task task(ex, kSyncHooks, &r);
    r.task = &task;
    task.start(job_sync_wait, &r, 1);
    assert_int_equal(r.blocks, 0);
    assert_int_equal(r.result, 1);
}

void test_executor__sync_wait_fd_polls_and_orphan_ends_it(void **) // rule: THR-10
{
    exec::Executor ex(sync_opts(true));
    ex.start();
    int p[2];
    assert_int_equal(::pipe(p), 0);
    SyncRequest r;
    exec::Task task(ex, kSyncHooks, &r);
    r.task = &task;
    // A descriptor that is ready: polled on this thread, no watcher thread.
    assert_int_equal(::write(p[1], "x", 1), 1);
    r.fd = p[0];
    r.timeout_ms = 1000;
    task.start(job_wait_fd, &r);
    assert_int_equal(r.result, CWSGI_WAIT_READ);
    // A timeout alone.
    r.fd = -1;
    r.timeout_ms = 20;
    auto t0 = std::chrono::steady_clock::now();
    task.start(job_wait_fd, &r);
    assert_int_equal(r.result, CWSGI_E_TIMEOUT);
    assert_true(std::chrono::steady_clock::now() - t0 >= 15ms);
    // Once the connection is gone, wait_fd says so at once (THR-6).
    task.orphan(CWSGI_E_DISCONNECTED);
    r.fd = p[0];
    r.timeout_ms = 5000;
    task.start(job_wait_fd, &r);
    assert_int_equal(r.result, CWSGI_E_DISCONNECTED);
    ::close(p[0]);
    ::close(p[1]);
}

void test_executor__sync_without_inline_is_one_pool_thread(void **) // rule: THR-10
{
    // An adapter that cannot block its loop (h2o, microhttpd): threads mode with one thread.
    exec::Executor ex(sync_opts(false));
    ex.start();
    assert_false(ex.sync());
    assert_true(ex.mode() == core::ExecMode::threads);
    assert_int_equal(ex.options().threads, 1);
    FakeRequest a, b;
    exec::Task ta(ex, kHooks, &a), tb(ex, kHooks, &b);
    a.task = &ta;
    b.task = &tb;
    ta.start(job_wait_ready, &a);
    tb.start(job_wait_ready, &b);
    std::this_thread::sleep_for(50ms);
    {
        std::lock_guard<std::mutex> lk(b.mu);
        b.ready = true;
        tb.notify();
    }
    // b cannot run while a holds the only thread.
    std::this_thread::sleep_for(50ms);
    assert_int_equal(b.done.load(), 0);
    {
        std::lock_guard<std::mutex> lk(a.mu);
        a.ready = true;
        ta.notify();
    }
    assert_true(loop_until({&a, &b}, [&] { return a.done.load() == 1 && b.done.load() == 1; }));
    assert_true(ex.stop(1000ms));
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
        cmocka_unit_test(test_executor__sync_runs_inline_to_the_end),
        cmocka_unit_test(test_executor__sync_wait_that_holds_does_not_block),
        cmocka_unit_test(test_executor__sync_wait_fd_polls_and_orphan_ends_it),
        cmocka_unit_test(test_executor__sync_without_inline_is_one_pool_thread),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
