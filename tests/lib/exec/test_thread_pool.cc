// test_thread_pool.cc: the threads-mode pool (lib/exec/thread_pool.hh): order, many producers,
// the monitor that gets a second worker for a job stuck behind a slow one (THR-4), and the
// stop(timeout) contract with and without a job still inside the app.
#include "cmocka.hh"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "exec/thread_pool.hh"

using namespace cwsgi::exec;
using namespace std::chrono_literals;

namespace {

// Spins (sleeping 100 µs at a time) until `pred` holds or `limit` passes; returns pred().
template <class Pred> bool wait_until(Pred pred, std::chrono::milliseconds limit)
{
    auto until = std::chrono::steady_clock::now() + limit;
    while (!pred() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(100us);
    return pred();
}

struct Log {
    std::vector<int32_t> seen; // written by the one worker only
};

void record(void *arg, int32_t value) { static_cast<Log *>(arg)->seen.push_back(value); }

void test_thread_pool__one_worker_keeps_submission_order(void **)
{
    Log log;
    ThreadPool pool;
    pool.start(1);
    for (int32_t i = 0; i < 5000; ++i) pool.submit(&record, &log, i);
    assert_true(pool.stop(5000ms)); // every queued job runs before the workers exit
    assert_int_equal(log.seen.size(), 5000);
    for (int32_t i = 0; i < 5000; ++i) assert_int_equal(log.seen[i], i);
}

struct Producer {
    std::atomic<int32_t> count{0};
    std::atomic<int32_t> last{-1};
    std::atomic<bool> out_of_order{false};
};

void count_in_order(void *arg, int32_t value)
{
    auto *p = static_cast<Producer *>(arg);
    // With one worker the jobs of one producer must come in the order it submitted them.
    if (p->last.exchange(value) >= value) p->out_of_order = true;
    p->count.fetch_add(1);
}

void count_only(void *arg, int32_t) { static_cast<Producer *>(arg)->count.fetch_add(1); }

void run_producers(unsigned workers, JobFn fn)
{
    constexpr int kProducers = 6, kJobs = 20000;
    std::vector<std::unique_ptr<Producer>> prod;
    for (int i = 0; i < kProducers; ++i) prod.push_back(std::make_unique<Producer>());
    ThreadPool pool;
    pool.start(workers);
    std::vector<std::thread> threads;
    for (int i = 0; i < kProducers; ++i) {
        threads.emplace_back([&, i] {
            for (int32_t j = 0; j < kJobs; ++j) pool.submit(fn, prod[i].get(), j);
        });
    }
    for (std::thread &t : threads) t.join();
    assert_true(pool.stop(10000ms));
    for (auto &p : prod) {
        assert_int_equal(p->count.load(), kJobs);
        assert_false(p->out_of_order.load());
    }
}

void test_thread_pool__many_producers_lose_nothing(void **)
{
    run_producers(1, &count_in_order);
    run_producers(3, &count_only);
}

struct Pair {
    std::atomic<bool> second_ran{false};
    std::atomic<bool> first_saw_second{false};
};

void wait_for_second(void *arg, int32_t)
{
    auto *p = static_cast<Pair *>(arg);
    p->first_saw_second = wait_until([&] { return p->second_ran.load(); }, 5000ms);
}

void mark_second(void *arg, int32_t) { static_cast<Pair *>(arg)->second_ran = true; }

void test_thread_pool__slow_job_gets_help(void **) // rule: THR-4
{
    // submit() wakes no sleeper while a worker is busy; the monitor must, after about 1 ms, or
    // the second job would wait for the first, which waits for the second.
    Pair p;
    ThreadPool pool;
    pool.start(2);
    std::this_thread::sleep_for(10ms); // both workers asleep
    pool.submit(&wait_for_second, &p);
    std::this_thread::sleep_for(5ms); // the first job is inside the "app"
    pool.submit(&mark_second, &p);
    assert_true(pool.stop(10000ms));
    assert_true(p.first_saw_second.load());
}

struct Blocker {
    std::atomic<bool> inside{false};
    std::atomic<bool> release{false};
    std::atomic<bool> done{false};
};

void block(void *arg, int32_t)
{
    auto *b = static_cast<Blocker *>(arg);
    b->inside = true;
    wait_until([&] { return b->release.load(); }, 10000ms);
    b->done = true;
}

void test_thread_pool__stop_with_busy_worker_returns_false(void **)
{
    // The blocker outlives the detached worker: the contract says the caller keeps alive what
    // a job can reach.
    static Blocker b;
    auto pool = std::make_unique<ThreadPool>();
    pool->start(1);
    pool->submit(&block, &b);
    assert_true(wait_until([] { return b.inside.load(); }, 5000ms));
    auto t0 = std::chrono::steady_clock::now();
    assert_false(pool->stop(50ms));
    assert_true(std::chrono::steady_clock::now() - t0 >= 50ms);
    pool.reset(); // destroying a stopped pool with a detached worker is allowed
    b.release = true;
    assert_true(wait_until([] { return b.done.load(); }, 5000ms));
}

void test_thread_pool__stop_with_idle_workers_is_quick(void **)
{
    ThreadPool pool;
    pool.start(4);
    std::this_thread::sleep_for(5ms);
    auto t0 = std::chrono::steady_clock::now();
    assert_true(pool.stop(5000ms));
    assert_true(std::chrono::steady_clock::now() - t0 < 1000ms);
}

} // namespace

int main()
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thread_pool__one_worker_keeps_submission_order),
        cmocka_unit_test(test_thread_pool__many_producers_lose_nothing),
        cmocka_unit_test(test_thread_pool__slow_job_gets_help),
        cmocka_unit_test(test_thread_pool__stop_with_busy_worker_returns_false),
        cmocka_unit_test(test_thread_pool__stop_with_idle_workers_is_quick),
    };
    return cmocka_run_group_tests_name("exec_thread_pool", tests, nullptr, nullptr);
}
