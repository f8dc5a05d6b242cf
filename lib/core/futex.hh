// futex.hh: a mutex and a wait/wake pair built on Linux futexes, for the locks on the request
// path.
//
// Why not std::mutex: callgrind counts about 55 instructions for an uncontended
// pthread_mutex_lock/unlock pair (glibc checks the mutex kind, the owner and the elision
// settings on every call), and a hello request on the microhttpd adapter took ten such pairs,
// about a tenth of the core's whole budget (issue 7, deliverable 4). FutexMutex does the same
// job in one compare-and-swap and one exchange when nobody waits. It is the three-state mutex of
// Drepper's "Futexes Are Tricky" (mutex3), the design Rust's std::sync::Mutex uses on Linux:
//   0 unlocked, 1 locked, 2 locked and a thread may be asleep on it.
// It is not recursive, not fair and not robust, as std::mutex is neither of the first two.
// Waits use FUTEX_*_PRIVATE: every user is in one process.
//
// libstdc++'s std::atomic::wait is not used for Notifier: in GCC 12 it spins and calls
// sched_yield before it sleeps, which on a 2-CPU machine shared with the load generator costs
// more than it saves.
#pragma once

#include <atomic>
#include <climits>
#include <cstdint>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace cwsgi::core {

// The futex calls below hand the kernel the address of a std::atomic<uint32_t> as a plain
// 32-bit word: that holds only while the atomic is the bare word, without a lock beside it.
static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "a futex word is 32 bits");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "a futex word must be lock-free");

/// Sleeps while `*word == expected` (until a futex_wake on `word`, a signal, or a spurious
/// wake-up); returns at once when the value differs. Threads: any.
inline void futex_wait(std::atomic<uint32_t> *word, uint32_t expected)
{
    syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}

/// Wakes up to `count` threads sleeping in futex_wait on `word`. Threads: any.
inline void futex_wake(std::atomic<uint32_t> *word, int count)
{
    syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAKE_PRIVATE, count, nullptr, nullptr, 0);
}

/// A non-recursive mutex (BasicLockable and Lockable, so std::lock_guard and std::unique_lock
/// take it). Threads: any; unlock() by the thread that locked it.
class FutexMutex {
public:
    FutexMutex() = default;
    FutexMutex(const FutexMutex &) = delete;
    FutexMutex &operator=(const FutexMutex &) = delete;

    void lock()
    {
        uint32_t expected = 0;
        if (state_.compare_exchange_strong(expected, 1, std::memory_order_acquire, std::memory_order_relaxed)) return;
        lock_contended();
    }

    bool try_lock()
    {
        uint32_t expected = 0;
        return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire, std::memory_order_relaxed);
    }

    void unlock()
    {
        // 2 means some thread may sleep on the word: wake one, which takes the lock as 2 again
        // (it cannot know whether others sleep too).
        if (state_.exchange(0, std::memory_order_release) == 2) futex_wake(&state_, 1);
    }

private:
    void lock_contended()
    {
        // A short spin first: the holder of a request-path lock keeps it for a few hundred
        // instructions, much less than a sleep and a wake-up cost.
        for (int i = 0; i < 100; ++i) {
            uint32_t expected = 0;
            if (state_.load(std::memory_order_relaxed) == 0 &&
                state_.compare_exchange_weak(expected, 1, std::memory_order_acquire, std::memory_order_relaxed)) {
                return;
            }
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        while (state_.exchange(2, std::memory_order_acquire) != 0) futex_wait(&state_, 2);
    }

    std::atomic<uint32_t> state_{0};
};

/// A generation counter that threads sleep on until it moves: the wake-up half of a condition
/// variable for any lock (Task::wait in threads mode). A waiter reads generation() while it
/// holds its lock, checks its condition, releases the lock and calls wait(g); a notifier makes
/// its change (under that lock) and then calls notify_all(). A change made after the waiter's
/// check also moves the counter after the waiter read it, so the sleep returns at once or is
/// woken. Costs one atomic increment and one load per notification when nobody sleeps.
/// Threads: any.
class Notifier {
public:
    uint32_t generation() const { return gen_.load(std::memory_order_seq_cst); }

    /// Sleeps until the generation is no longer `g` (or spuriously). The caller holds no lock.
    void wait(uint32_t g)
    {
        waiters_.fetch_add(1, std::memory_order_seq_cst);
        futex_wait(&gen_, g);
        waiters_.fetch_sub(1, std::memory_order_relaxed);
    }

    void notify_all()
    {
        gen_.fetch_add(1, std::memory_order_seq_cst);
        // Seq_cst against wait()'s increment: either this load sees the waiter, or the waiter's
        // futex_wait, which comes after its increment, sees the new generation.
        if (waiters_.load(std::memory_order_seq_cst) != 0) futex_wake(&gen_, INT_MAX);
    }

private:
    std::atomic<uint32_t> gen_{0};
    std::atomic<uint32_t> waiters_{0};
};

} // namespace cwsgi::core
