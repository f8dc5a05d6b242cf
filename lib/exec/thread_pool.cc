// thread_pool.cc: the app's worker threads in threads mode (see thread_pool.hh).
#include "thread_pool.hh"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <string>

namespace cwsgi::exec {

ThreadPool::~ThreadPool()
{
    // stop() normally ran; this only covers an early failure of the owner.
    if (!threads_.empty()) stop(std::chrono::milliseconds(0));
}

void ThreadPool::start(unsigned threads, const char *name)
{
    if (threads == 0) threads = 1;
    {
        std::lock_guard<std::mutex> lk(st_->mu);
        st_->alive = threads + 1;
    }
    for (unsigned i = 0; i < threads; ++i) threads_.emplace_back(&ThreadPool::worker, st_, std::string(name));
    threads_.emplace_back(&ThreadPool::monitor, st_, std::string(name) + "-mon");
}

namespace {

// How long the one idle worker that keeps looking for work spins (yielding the CPU at every
// turn) before it sleeps: under load the next job comes within microseconds, and sleeping and
// being woken for each job costs more. CWSGI_SPIN_US overrides it (0 turns it off); the
// microhttpd adapter's older name, CWSGI_MHD_SPIN_US, is still read when the new one is unset.
std::chrono::microseconds spin_time()
{
    static const long us = [] {
        const char *e = std::getenv("CWSGI_SPIN_US");
        if (e == nullptr) e = std::getenv("CWSGI_MHD_SPIN_US");
        return e != nullptr ? std::max(0L, std::atol(e)) : 20L;
    }();
    return std::chrono::microseconds(us);
}

// A job that waited this long while every active worker was inside the app gets a sleeping
// worker (THR-4: a slow handle() holds up no other request for more than about this).
constexpr std::chrono::milliseconds kHelpAfter{1};
// The monitor stops ticking after this long without work.
constexpr std::chrono::milliseconds kMonitorIdle{200};

// pthread_setname_np refuses names longer than 15 characters: cut them rather than lose them.
void set_thread_name(const std::string &name) { pthread_setname_np(pthread_self(), name.substr(0, 15).c_str()); }

} // namespace

void ThreadPool::submit(JobFn fn, void *arg, int32_t value)
{
    bool wake, tick;
    {
        Job job{fn, arg, value, std::chrono::steady_clock::now()};
        std::lock_guard<std::mutex> lk(st_->mu);
        st_->jobs.push_back(job);
        st_->queued.store(st_->jobs.size(), std::memory_order_release);
        // Waking a sleeping worker costs two context switches, so it happens only when no
        // worker is active: a spinning worker finds the job by itself, and a busy one takes
        // it after its current job. If that job is slow, the monitor wakes a sleeper.
        wake = st_->spinning == 0 && st_->busy == 0 && st_->sleeping > 0;
        tick = !wake && !st_->ticking;
        if (tick) {
            st_->ticking = true;
            st_->last_work = job.queued_at;
        }
    }
    if (wake) st_->cv.notify_one();
    if (tick) st_->tick.notify_one();
}

void ThreadPool::worker(std::shared_ptr<State> st, std::string name)
{
    set_thread_name(name); // tells them apart in top and perf
    std::unique_lock<std::mutex> lk(st->mu);
    bool may_spin = true;
    for (;;) {
        if (!st->jobs.empty()) {
            Job job = st->jobs.front();
            st->jobs.pop_front();
            st->queued.store(st->jobs.size(), std::memory_order_release);
            ++st->busy;
            lk.unlock();
            job.fn(job.arg, job.value);
            lk.lock();
            --st->busy;
            may_spin = true;
            continue;
        }
        if (st->stopping) break; // every queued job has run
        if (may_spin && st->spinning == 0 && st->busy == 0 && spin_time().count() > 0) {
            // Only one worker spins, and only while no other runs a job: a spinner competes
            // for a CPU with threads that have real work (the event loop, the kernel's network
            // work), so it yields the CPU to them at every turn.
            ++st->spinning;
            lk.unlock();
            auto until = std::chrono::steady_clock::now() + spin_time();
            unsigned n = 0;
            while (st->queued.load(std::memory_order_acquire) == 0) {
                sched_yield();
                if ((++n & 7) == 0 && std::chrono::steady_clock::now() >= until) break;
            }
            lk.lock();
            --st->spinning;
            may_spin = false; // found a job (taken next) or nothing (then sleep)
            continue;
        }
        ++st->sleeping;
        st->cv.wait(lk);
        --st->sleeping;
        may_spin = true;
    }
    --st->alive;
    st->exited.notify_all();
}

void ThreadPool::monitor(std::shared_ptr<State> st, std::string name)
{
    set_thread_name(name);
    std::unique_lock<std::mutex> lk(st->mu);
    while (!st->stopping) {
        if (!st->ticking) {
            st->tick.wait(lk);
            continue;
        }
        st->tick.wait_for(lk, kHelpAfter);
        auto now = std::chrono::steady_clock::now();
        if (!st->jobs.empty() || st->busy > 0) st->last_work = now;
        if (!st->jobs.empty() && now - st->jobs.front().queued_at >= kHelpAfter && st->spinning == 0 &&
            st->sleeping > 0) {
            st->cv.notify_one(); // the workers are all inside slow handles: get another one
        }
        if (now - st->last_work > kMonitorIdle) st->ticking = false;
    }
    --st->alive;
    st->exited.notify_all();
}

bool ThreadPool::stop(std::chrono::milliseconds timeout)
{
    std::unique_lock<std::mutex> lk(st_->mu);
    st_->stopping = true;
    st_->cv.notify_all();
    st_->tick.notify_all();
    bool all = st_->exited.wait_for(lk, timeout, [&] { return st_->alive == 0; });
    lk.unlock();
    for (std::thread &t : threads_) {
        if (all) {
            t.join();
        } else {
            t.detach();
        }
    }
    threads_.clear();
    return all;
}

} // namespace cwsgi::exec
