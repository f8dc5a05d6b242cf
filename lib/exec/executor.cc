// executor.cc: the three execution modes behind one Task interface (see executor.hh), the
// watcher behind a cooperative wait_fd, and the SERIAL gate.
#include "executor.hh"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <thread>
#include <vector>

#include "cwsgi.h"
#include "core/exchange.hh"
#include "core/probe.hh"

namespace cwsgi::exec {

namespace {

int64_t now_ms()
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

/// The idle fibers of one thread, with the stacks they came from. Fibers are thread-bound, so
/// each loop thread keeps its own; the cache is destroyed with the thread, on that thread.
struct FiberCache {
    std::unique_ptr<StackPool> stacks;
    std::vector<std::unique_ptr<Fiber>> all;
    std::vector<Fiber *> idle;

    Fiber *take(size_t stack_size)
    {
        if (!stacks) stacks = std::make_unique<StackPool>(stack_size);
        if (!idle.empty()) {
            Fiber *f = idle.back();
            idle.pop_back();
            return f;
        }
        all.push_back(std::make_unique<Fiber>(*stacks));
        idle.reserve(all.size());
        return all.back().get();
    }
    void give_back(Fiber *f) { idle.push_back(f); }
    ~FiberCache()
    {
        // Fibers first: they return their stacks to the pool.
        all.clear();
        stacks.reset();
    }
};

thread_local FiberCache t_fibers;

/// Orphaned Tasks of this loop thread that were woken: their engine will not call them back,
/// so the next run_pending() of any request on the thread runs them.
thread_local std::vector<Task *> t_ready;

} // namespace

// ---------------------------------------------------------------------------------------------
// FdWatcher: one thread that watches the descriptors cooperative requests wait on, and their
// timeouts. libmicrohttpd runs its loops itself and lets us add no descriptor to them, so the
// watch cannot live on the loop thread; the watcher tells the request's loop through the
// adapter's wake hook instead. An engine whose loop we own (forking, h2o) can watch in-loop.

class FdWatcher {
public:
    FdWatcher()
    {
        ep_ = ::epoll_create1(EPOLL_CLOEXEC);
        wake_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = nullptr; // the wake-up eventfd
        ::epoll_ctl(ep_, EPOLL_CTL_ADD, wake_, &ev);
        thread_ = std::thread([this] { loop(); });
    }
    ~FdWatcher()
    {
        {
            std::lock_guard<std::mutex> lk(mu_);
            stop_ = true;
        }
        poke();
        thread_.join();
        ::close(ep_);
        ::close(wake_);
    }

    /// Registers `t` (its watch_* fields set); false when `fd` cannot be watched: then the
    /// result is already in `immediate` (a regular file is always ready, EBADF is CWSGI_E_INVAL).
    bool add(Task *t, int32_t &immediate)
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (hard_stop_) {
            immediate = CWSGI_E_SHUTDOWN;
            return false;
        }
        if (t->watch_fd_ >= 0) {
            epoll_event ev{};
            ev.events = EPOLLONESHOT | ((t->watch_events_ & CWSGI_WAIT_READ) ? EPOLLIN | EPOLLRDHUP : 0u) |
                        ((t->watch_events_ & CWSGI_WAIT_WRITE) ? EPOLLOUT : 0u);
            ev.data.ptr = t;
            int rc = ::epoll_ctl(ep_, EPOLL_CTL_ADD, t->watch_fd_, &ev);
            if (rc != 0 && errno == EEXIST) {
                // Another request waits on the same descriptor (poll lets several wait, so
                // wait_fd does too): watch a duplicate, closed when the wait ends.
                int dup = ::fcntl(t->watch_fd_, F_DUPFD_CLOEXEC, 0);
                if (dup >= 0) {
                    rc = ::epoll_ctl(ep_, EPOLL_CTL_ADD, dup, &ev);
                    if (rc == 0) {
                        t->watch_fd_ = dup;
                        t->watch_dup_ = true;
                    } else {
                        ::close(dup);
                    }
                }
            }
            if (rc != 0) {
                if (errno == EPERM) { // regular files and the like: always ready, as poll says
                    immediate = static_cast<int32_t>(t->watch_events_);
                } else {
                    immediate = errno == EBADF ? CWSGI_E_INVAL : CWSGI_E_IO;
                }
                return false;
            }
        }
        waiting_.push_back(t);
        poke(); // the loop recomputes its timeout
        return true;
    }

    /// Removes `t` without a result; false when it was not registered (a result is then on its
    /// way or there already).
    bool cancel(Task *t)
    {
        std::lock_guard<std::mutex> lk(mu_);
        auto it = std::find(waiting_.begin(), waiting_.end(), t);
        if (it == waiting_.end()) return false;
        waiting_.erase(it);
        unwatch(t);
        return true;
    }

    /// The graceful deadline: every registered wait ends with CWSGI_E_SHUTDOWN, and so does
    /// every later add().
    void hard_stop()
    {
        std::lock_guard<std::mutex> lk(mu_);
        hard_stop_ = true;
        poke();
    }

private:
    void poke()
    {
        uint64_t one = 1;
        ssize_t n = ::write(wake_, &one, sizeof one);
        (void)n; // a full counter means a wake-up is pending anyway
    }

    // Removes `t` and hands it the result. Called with mu_ held; the wake hook takes the
    // adapter's lock, which is never held while calling into the watcher.
    void fire_locked(Task *t, int32_t result)
    {
        auto it = std::find(waiting_.begin(), waiting_.end(), t);
        if (it == waiting_.end()) return;
        waiting_.erase(it);
        unwatch(t);
        t->on_fd_ready(result);
    }

    void unwatch(Task *t)
    {
        if (t->watch_fd_ < 0) return;
        ::epoll_ctl(ep_, EPOLL_CTL_DEL, t->watch_fd_, nullptr);
        if (t->watch_dup_) ::close(t->watch_fd_);
        t->watch_dup_ = false;
        t->watch_fd_ = -1;
    }

    void loop()
    {
        epoll_event evs[64];
        for (;;) {
            int timeout = -1;
            {
                std::lock_guard<std::mutex> lk(mu_);
                if (stop_) return;
                int64_t now = now_ms();
                for (Task *t : waiting_) {
                    if (t->watch_deadline_ms_ < 0) continue;
                    int64_t left = std::max<int64_t>(0, t->watch_deadline_ms_ - now);
                    if (timeout < 0 || left < timeout) timeout = static_cast<int>(std::min<int64_t>(left, 1 << 30));
                }
            }
            int n = ::epoll_wait(ep_, evs, 64, timeout);
            std::lock_guard<std::mutex> lk(mu_);
            if (stop_) return;
            for (int i = 0; i < n; ++i) {
                auto *t = static_cast<Task *>(evs[i].data.ptr);
                if (t == nullptr) {
                    uint64_t v;
                    ssize_t r = ::read(wake_, &v, sizeof v);
                    (void)r;
                    continue;
                }
                uint32_t e = evs[i].events;
                int32_t ready = 0;
                if (e & (EPOLLERR | EPOLLHUP)) {
                    ready = static_cast<int32_t>(t->watch_events_); // the app's next call sees it
                } else {
                    if (e & (EPOLLIN | EPOLLRDHUP)) ready |= CWSGI_WAIT_READ;
                    if (e & EPOLLOUT) ready |= CWSGI_WAIT_WRITE;
                    ready &= static_cast<int32_t>(t->watch_events_);
                }
                // fire_locked ignores a Task that is no longer registered.
                if (ready != 0) fire_locked(t, ready);
            }
            int64_t now = now_ms();
            std::vector<Task *> due;
            for (Task *t : waiting_) {
                if (hard_stop_ || (t->watch_deadline_ms_ >= 0 && t->watch_deadline_ms_ <= now)) due.push_back(t);
            }
            for (Task *t : due) fire_locked(t, hard_stop_ ? CWSGI_E_SHUTDOWN : CWSGI_E_TIMEOUT);
        }
    }

    int ep_ = -1;
    int wake_ = -1;
    std::mutex mu_;
    std::vector<Task *> waiting_; // few (one per request inside wait_fd): a vector is enough
    bool stop_ = false;
    bool hard_stop_ = false;
    std::thread thread_;
};

// ---------------------------------------------------------------------------------------------
// SerialGate: one handle at a time for a CWSGI_THREADS_SERIAL app in cooperative mode (THR-8).
// A mutex held across a fiber switch would deadlock the loop thread that switches to another
// request wanting the same mutex, so the turn is a flag and a queue, and a waiter yields.

class SerialGate {
public:
    void enter(Task &t)
    {
        std::unique_lock<core::FutexMutex> lk(mu_);
        if (!busy_) {
            busy_ = true;
            return;
        }
        t.serial_granted_ = false;
        waiters_.push_back(&t);
        t.wait(lk, [&] { return t.serial_granted_; });
    }
    void leave()
    {
        Task *next = nullptr;
        {
            std::lock_guard<core::FutexMutex> lk(mu_);
            if (waiters_.empty()) {
                busy_ = false;
                return;
            }
            next = waiters_.front();
            waiters_.pop_front();
            next->hooks_.hold(next->arg_); // before the grant is visible: see notify_from_any_thread
            next->serial_granted_ = true;  // the turn passes on; busy_ stays true
        }
        next->notify_from_any_thread();
    }

private:
    core::FutexMutex mu_;
    bool busy_ = false;
    std::deque<Task *> waiters_;
};

// ---------------------------------------------------------------------------------------------
// Executor

Executor::Executor(Options options) : opt_(options)
{
    if (opt_.mode == core::ExecMode::sync && !opt_.inline_sync) {
        // THR-10 on an adapter that cannot block its loop: one app thread per worker.
        opt_.mode = core::ExecMode::threads;
        opt_.threads = 1;
    }
    hard_stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (cooperative() && opt_.serial) gate_ = std::make_unique<SerialGate>();
    if (opt_.log_fd >= 0) Fiber::set_overflow_log_fd(opt_.log_fd);
}

Executor::~Executor()
{
    watcher_.reset();
    if (hard_stop_fd_ >= 0) ::close(hard_stop_fd_);
}

void Executor::start()
{
    if (opt_.mode == core::ExecMode::threads) pool_.start(std::max(1u, opt_.threads));
}

void Executor::hard_stop()
{
    hard_stop_.store(true, std::memory_order_release);
    uint64_t one = 1;
    ssize_t n = ::write(hard_stop_fd_, &one, sizeof one);
    (void)n;
    if (watcher_) watcher_->hard_stop();
}

bool Executor::stop(std::chrono::milliseconds timeout)
{
    if (opt_.mode != core::ExecMode::threads) return true;
    return pool_.stop(timeout);
}

FdWatcher &Executor::watcher()
{
    std::call_once(watcher_once_, [this] {
        watcher_ = std::make_unique<FdWatcher>();
        if (hard_stopped()) watcher_->hard_stop();
    });
    return *watcher_;
}

// ---------------------------------------------------------------------------------------------
// Task

Task::Task(Executor &ex, const Hooks &hooks, void *arg) : ex_(ex), hooks_(hooks), arg_(arg), sync_(ex.sync())
{
    if (sync_ && hooks_.block == nullptr) {
        std::fprintf(stderr, "cwsgi: sync mode without a block hook (an adapter bug)\n");
        std::abort();
    }
}

Task::~Task()
{
    // Nothing to free: a fiber goes back to its thread's cache when its job returns, and the
    // adapter holds a reference for every job until the done hook, so no Task dies with a
    // suspended fiber.
}

bool Task::prepare()
{
    if (!ex_.cooperative() || fiber_ != nullptr) return true;
    Fiber *f = t_fibers.take(ex_.opt_.stack_size);
    if (!f->start(&Task::fiber_entry, &job_)) { // job_ is filled in by start()
        t_fibers.give_back(f);
        return false;
    }
    f->set_describer(hooks_.describe, arg_);
    fiber_ = f;
    waiting_ = false;
    thread_ = &t_ready; // identifies this thread
    return true;
}

void Task::start(Fn fn, void *arg, int32_t value)
{
    job_ = Job{this, fn, arg, value};
    if (sync_) {
        // THR-10: right here, to the end. The loop serves nothing else meanwhile, so the
        // master's watchdog sees how long (a request past --timeout costs the worker, as in
        // gunicorn's sync worker).
        const core::WorkerProbe *probe = core::worker_probe();
        if (probe) probe->fiber_running(true);
        fn(arg, value);
        if (probe) probe->fiber_running(false);
        hooks_.done(arg_); // the last use of this
        return;
    }
    if (!ex_.cooperative()) {
        ex_.pool_.submit(&Task::pool_entry, &job_);
        return;
    }
    if (!prepare()) {
        std::fprintf(stderr, "cwsgi: cannot map a fiber stack of %zu bytes (out of memory)\n", ex_.opt_.stack_size);
        std::abort();
    }
    pending_.store(true, std::memory_order_relaxed); // the first resume
    run_pending();
}

void Task::pool_entry(void *p, int32_t)
{
    Job *j = static_cast<Job *>(p);
    Task *t = j->task;
    j->fn(j->arg, j->value);
    t->hooks_.done(t->arg_); // the last use of t
}

void Task::fiber_entry(void *p)
{
    Job *j = static_cast<Job *>(p);
    j->task->enter_serial();
    j->fn(j->arg, j->value);
    j->task->leave_serial();
}

void Task::suspend()
{
    waiting_ = true;
    Fiber::yield();
    waiting_ = false;
}

void Task::notify()
{
    if (sync_) return; // the waiting side re-checks after each block hook
    if (!ex_.cooperative()) {
        wakeups_.notify_all();
    } else if (fiber_ != nullptr && waiting_) {
        pending_.store(true, std::memory_order_relaxed);
    }
}

void Task::notify_from_any_thread()
{
    // Copies: the release below may destroy the object that holds this Task.
    const Hooks &hooks = hooks_;
    void *arg = arg_;
    if (sync_) {
        // Nothing waits on another thread's word in sync mode.
    } else if (!ex_.cooperative()) {
        wakeups_.notify_all();
    } else {
        pending_.store(true, std::memory_order_release);
        if (gone_code_.load(std::memory_order_relaxed) != 0 && thread_ == &t_ready) {
            // Orphaned, and woken on its own loop thread (the SERIAL turn, which runs on one
            // loop thread): the next run_pending there runs it. Its reference moves to the list.
            t_ready.push_back(this);
            t_ready_count_ = t_ready.size();
            return;
        }
        hooks.wake(arg);
    }
    hooks.release(arg);
}

void Task::run_pending_slow()
{
    step();
    // Orphans woken on this thread (see notify_from_any_thread); each holds a reference.
    while (!t_ready.empty() && Fiber::current() == nullptr) {
        Task *t = t_ready.back();
        t_ready.pop_back();
        t_ready_count_ = t_ready.size();
        const Hooks &hooks = t->hooks_;
        void *arg = t->arg_;
        t->step();
        hooks.release(arg);
    }
}

void Task::step()
{
    while (fiber_ != nullptr && pending_.exchange(false, std::memory_order_acq_rel)) {
        // While the fiber runs this loop serves nothing else: the master's watchdog sees how long.
        const core::WorkerProbe *probe = core::worker_probe();
        if (probe) probe->fiber_running(true);
        fiber_->resume();
        if (probe) probe->fiber_running(false);
        if (fiber_->done()) {
            release_fiber();
            hooks_.done(arg_); // the last use of this
            return;
        }
    }
}

void Task::orphan(int32_t code)
{
    // Kept even when no job runs now: the request's completion job may still come, and a turn
    // granted to it must then be run from this thread's ready list.
    if (sync_) {
        // A later wait_fd of the job returns the code at once (THR-6).
        gone_code_.store(ex_.hard_stopped() ? CWSGI_E_SHUTDOWN : code, std::memory_order_relaxed);
        return;
    }
    if (!ex_.cooperative()) return;
    // At the graceful deadline the connection closes because of the stop: say so (LIFE-STOP-5).
    if (ex_.hard_stopped()) code = CWSGI_E_SHUTDOWN;
    gone_code_.store(code, std::memory_order_relaxed);
    if (fiber_ != nullptr && ex_.watcher_ && ex_.watcher_->cancel(this)) {
        fd_result_.store(code, std::memory_order_release);
        if (waiting_) pending_.store(true, std::memory_order_relaxed);
    }
}

void Task::release_fiber()
{
    t_fibers.give_back(fiber_);
    fiber_ = nullptr;
    waiting_ = false;
}

void Task::on_fd_ready(int32_t result)
{
    hooks_.hold(arg_);
    fd_result_.store(result, std::memory_order_release);
    notify_from_any_thread();
}

int32_t Task::wait_fd(int fd, uint32_t events, int32_t timeout_ms)
{
    if (ex_.hard_stopped()) return CWSGI_E_SHUTDOWN;
    if (int32_t gone = gone_code_.load(std::memory_order_relaxed)) return gone;
    if (fiber_ == nullptr) return core::poll_fd(fd, events, timeout_ms, ex_.hard_stop_fd_);
    watch_fd_ = fd;
    watch_dup_ = false;
    watch_events_ = events;
    watch_deadline_ms_ = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    fd_result_.store(0, std::memory_order_relaxed);
    int32_t immediate = 0;
    if (!ex_.watcher().add(this, immediate)) return immediate;
    while (fd_result_.load(std::memory_order_acquire) == 0) suspend();
    return fd_result_.load(std::memory_order_relaxed);
}

void Task::enter_serial()
{
    if (ex_.gate_) ex_.gate_->enter(*this);
}

void Task::leave_serial()
{
    if (ex_.gate_) ex_.gate_->leave();
}

} // namespace cwsgi::exec
