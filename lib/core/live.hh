// live.hh: the requests a server has in flight, for its graceful stop (LIFE-STOP-1 to 5).
//
// Every adapter keeps the same registry: a request joins it when the engine hands it over and
// leaves it when the engine is done with it; the graceful stop waits until it is empty or the
// deadline passes, then cuts what is left. One implementation, so that the drain behaves the
// same on every adapter.
//
//   class Stream : public core::LiveSet<Stream>::Hook { void ref(); void unref(); ... };
//   core::LiveSet<Stream> live;
//   live.add(s);  ...  live.remove(s);                 // engine threads
//   size_t left = live.drain(ctx.log(), deadline);      // Server::stop
//   live.for_each_held([](Stream *s) { s->force_stop(); });
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "futex.hh"
#include "log.hh"

namespace cwsgi::core {

/// An intrusive, thread-safe set of T (T derives from LiveSet<T>::Hook and has ref()/unref()
/// for for_each_held). Threads: any.
template <class T> class LiveSet {
public:
    /// The links a T carries; only the LiveSet touches them.
    class Hook {
        friend class LiveSet;
        T *live_prev_ = nullptr;
        T *live_next_ = nullptr;
        bool live_listed_ = false;
    };

    /// Lists `t`. It must not be listed already.
    void add(T *t)
    {
        std::lock_guard<FutexMutex> lk(mu_);
        Hook &h = *t;
        h.live_prev_ = nullptr;
        h.live_next_ = head_;
        h.live_listed_ = true;
        if (head_ != nullptr) static_cast<Hook &>(*head_).live_prev_ = t;
        head_ = t;
        ++count_;
        if (watchers_ != 0) cv_.notify_all(); // drain() with a quiet spell watches for newcomers
    }

    /// Unlists `t`; a no-op when it is not listed (already removed).
    void remove(T *t)
    {
        std::lock_guard<FutexMutex> lk(mu_);
        Hook &h = *t;
        if (!h.live_listed_) return;
        if (h.live_prev_ != nullptr) {
            static_cast<Hook &>(*h.live_prev_).live_next_ = h.live_next_;
        } else {
            head_ = h.live_next_;
        }
        if (h.live_next_ != nullptr) static_cast<Hook &>(*h.live_next_).live_prev_ = h.live_prev_;
        h.live_prev_ = h.live_next_ = nullptr;
        h.live_listed_ = false;
        if (--count_ == 0 && watchers_ != 0) cv_.notify_all();
    }

    size_t count() const
    {
        std::lock_guard<FutexMutex> lk(mu_);
        return count_;
    }

    /// Waits until the set is empty or `deadline` passed; returns how many are left.
    size_t wait_empty(std::chrono::steady_clock::time_point deadline)
    {
        std::unique_lock<FutexMutex> lk(mu_);
        ++watchers_;
        cv_.wait_until(lk, deadline, [&] { return count_ == 0; });
        --watchers_;
        return count_;
    }

    /// The graceful stop's drain: logs how many requests are in flight, waits until none is or
    /// `deadline` passed, and logs a warning for those left. With `quiet` > 0, an empty set must
    /// also stay empty for that long: an engine that reads a connection accepted just before
    /// the stop only on its next turn shows that request a moment later, and it is served
    /// rather than cut (a worker retired under load, LIFE-ARB-4). Returns how many are left.
    size_t drain(Logger &log, std::chrono::steady_clock::time_point deadline, uint32_t graceful_ms,
                 std::chrono::milliseconds quiet = std::chrono::milliseconds(0))
    {
        size_t left;
        {
            std::unique_lock<FutexMutex> lk(mu_);
            ++watchers_;
            log.info(fmt::format("Graceful stop: {} request(s) in flight, waiting up to {} ms", count_, graceful_ms));
            cv_.wait_until(lk, deadline, [&] { return count_ == 0; });
            while (quiet.count() > 0 && count_ == 0 && std::chrono::steady_clock::now() < deadline) {
                auto until = std::min(deadline, std::chrono::steady_clock::now() + quiet);
                if (!cv_.wait_until(lk, until, [&] { return count_ != 0; })) break;
                cv_.wait_until(lk, deadline, [&] { return count_ == 0; });
            }
            --watchers_;
            left = count_;
        }
        if (left > 0) log.warning(fmt::format("Graceful timeout: closing {} request(s) still in flight", left));
        return left;
    }

    /// Calls `fn(t)` for every listed t, outside the lock, each held by a ref() taken under
    /// the lock and dropped by unref() after `fn`, so `fn` may end the request (which then
    /// removes itself).
    template <class Fn> void for_each_held(Fn fn)
    {
        std::vector<T *> held;
        {
            std::lock_guard<FutexMutex> lk(mu_);
            for (T *t = head_; t != nullptr; t = static_cast<Hook &>(*t).live_next_) {
                t->ref();
                held.push_back(t);
            }
        }
        for (T *t : held) {
            fn(t);
            t->unref();
        }
    }

private:
    // Taken twice per request (add, remove), so the futex lock (futex.hh), and the condition
    // variable is notified only while a drain waits on it: a notification takes the
    // condition_variable_any's own mutex.
    mutable FutexMutex mu_;
    std::condition_variable_any cv_;
    unsigned watchers_ = 0; // threads inside wait_empty() or drain()
    T *head_ = nullptr;
    size_t count_ = 0;
};

} // namespace cwsgi::core
