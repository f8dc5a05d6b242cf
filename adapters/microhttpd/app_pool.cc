// app_pool.cc: the app's worker threads (see app_pool.hh).
#include "app_pool.hh"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cstdlib>

#include "bridge.hh"

namespace cwsgi::adapters::mhd {

AppPool::~AppPool()
{
    // stop() normally ran; this only covers an early failure in serve().
    if (!threads_.empty()) stop(std::chrono::milliseconds(0));
}

void AppPool::start(unsigned threads)
{
    if (threads == 0) threads = 1;
    {
        std::lock_guard<std::mutex> lk(st_->mu);
        st_->alive = threads + 1;
    }
    for (unsigned i = 0; i < threads; ++i)
        threads_.emplace_back(&AppPool::worker, st_);
    threads_.emplace_back(&AppPool::monitor, st_);
}

namespace {

// How long the one idle worker that keeps looking for work spins (yielding the CPU at every
// turn) before it sleeps: under load the next job comes within microseconds, and sleeping and
// being woken for each job costs more. CWSGI_MHD_SPIN_US overrides it (0 turns it off).
std::chrono::microseconds spin_time()
{
    static const long us = [] {
        const char *e = std::getenv("CWSGI_MHD_SPIN_US");
        return e != nullptr ? std::max(0L, std::atol(e)) : 20L;
    }();
    return std::chrono::microseconds(us);
}

// A job that waited this long while every active worker was inside the app gets a sleeping
// worker (THR-4: a slow handle() holds up no other request for more than about this).
constexpr std::chrono::milliseconds kHelpAfter{1};
// The monitor stops ticking after this long without work.
constexpr std::chrono::milliseconds kMonitorIdle{200};

} // namespace

void AppPool::submit(Job job)
{
    bool wake, tick;
    {
        job.queued_at = std::chrono::steady_clock::now();
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

void AppPool::worker(std::shared_ptr<State> st)
{
    pthread_setname_np(pthread_self(), "cwsgi-app"); // tells them apart in top and perf
    std::unique_lock<std::mutex> lk(st->mu);
    bool may_spin = true;
    for (;;) {
        if (!st->jobs.empty()) {
            Job job = st->jobs.front();
            st->jobs.pop_front();
            st->queued.store(st->jobs.size(), std::memory_order_release);
            ++st->busy;
            lk.unlock();
            if (job.kind == Kind::run) {
                job.bridge->run_app();
            } else {
                job.bridge->complete_on_pool(job.outcome);
            }
            job.bridge->unref();
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

void AppPool::monitor(std::shared_ptr<State> st)
{
    pthread_setname_np(pthread_self(), "cwsgi-app-mon");
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

bool AppPool::stop(std::chrono::milliseconds timeout)
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

} // namespace cwsgi::adapters::mhd
