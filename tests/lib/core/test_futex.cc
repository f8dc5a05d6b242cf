// test_futex.cc: the request path's lock and wake-up (lib/core/futex.hh): mutual exclusion under
// contention, try_lock, and a notifier that loses no wake-up when a notification races the
// waiter going to sleep.
#include "cmocka.hh"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "core/futex.hh"

using namespace cwsgi::core;
using namespace std::chrono_literals;

namespace {

void test_futex__mutex_excludes_under_contention(void **)
{
    FutexMutex mu;
    uint64_t counter = 0;       // guarded by mu: a lost update shows as a short count
    std::atomic<int> inside{0}; // how many threads are in the critical section
    std::atomic<bool> overlap{false};
    constexpr int kThreads = 4;
    constexpr int kRounds = 100000;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < kRounds; ++i) {
                std::lock_guard<FutexMutex> lk(mu);
                if (inside.fetch_add(1) != 0) overlap = true;
                ++counter;
                inside.fetch_sub(1);
            }
        });
    }
    for (auto &t : threads) t.join();
    assert_false(overlap.load());
    assert_int_equal(counter, uint64_t{kThreads} * kRounds);
}

void test_futex__try_lock_fails_while_held(void **)
{
    FutexMutex mu;
    assert_true(mu.try_lock());
    std::atomic<bool> got{true};
    std::thread([&] { got = mu.try_lock(); }).join();
    assert_false(got.load());
    mu.unlock();
    std::thread([&] {
        got = mu.try_lock();
        if (got) mu.unlock();
    }).join();
    assert_true(got.load());
}

// Two threads hand a turn back and forth 20,000 times, each waiting as Task::wait does
// (generation read under the lock, condition checked, lock released, sleep). A lost wake-up
// leaves both asleep: the watchdog sees the count stop and fails the test.
void test_futex__notifier_loses_no_wakeup(void **)
{
    FutexMutex mu;
    Notifier wakeups;
    int turn = 0; // guarded by mu: whose move it is (0 or 1)
    std::atomic<int> moves{0};
    constexpr int kMoves = 20000;
    auto player = [&](int me) {
        for (;;) {
            std::unique_lock<FutexMutex> lk(mu);
            for (;;) {
                const uint32_t g = wakeups.generation();
                if (turn == me || moves.load() >= kMoves) break;
                lk.unlock();
                wakeups.wait(g);
                lk.lock();
            }
            if (moves.load() >= kMoves) break;
            turn = 1 - me;
            moves.fetch_add(1);
            lk.unlock();
            wakeups.notify_all();
        }
        wakeups.notify_all(); // the other player may wait for a turn that will not come
    };
    std::thread a(player, 0), b(player, 1);
    int last = -1;
    auto stalled_since = std::chrono::steady_clock::now();
    while (moves.load() < kMoves) {
        std::this_thread::sleep_for(10ms);
        const int now = moves.load();
        if (now != last) {
            last = now;
            stalled_since = std::chrono::steady_clock::now();
        } else if (std::chrono::steady_clock::now() - stalled_since > 5s) {
            a.detach();
            b.detach();
            fail_msg("no move for 5 s after %d of %d: a wake-up was lost", now, kMoves);
        }
    }
    a.join();
    b.join();
    assert_int_equal(moves.load(), kMoves);
}

} // namespace

int main()
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_futex__mutex_excludes_under_contention),
        cmocka_unit_test(test_futex__try_lock_fails_while_held),
        cmocka_unit_test(test_futex__notifier_loses_no_wakeup),
    };
    return cmocka_run_group_tests_name("core_futex", tests, nullptr, nullptr);
}
