// executor.hh: where a request's handle() runs, and how its waits are carried out, so that an
// adapter drives every request the same way whichever execution mode the app runs in (THR-5).
//
// Three modes (core::ExecMode):
//   * threads: handle() runs on the Executor's ThreadPool; a wait blocks that thread on a
//     futex until the loop side notifies it (gunicorn's gthread);
//   * cooperative: handle() runs on a Fiber on the event-loop thread that started it; a wait
//     yields back to the loop, and the loop resumes the fiber in run_pending() once it was
//     notified (gunicorn's gevent, without monkey patching). A fiber never moves threads.
//   * sync (THR-10): handle() runs inline in start(), on the loop thread, one request at a time
//     (gunicorn's sync). A wait calls the adapter's block hook, which makes progress on this
//     request's own I/O and blocks the loop thread on its socket until something changed; the
//     loop serves nothing else meanwhile. An adapter that gives no block hook
//     (Options::inline_sync false) gets threads mode with one thread instead: the same
//     one-at-a-time meaning, with the loop kept free (THR-4).
//
// What an adapter does for one request, in every mode (the Task):
//   task.start(fn, arg)        "start this request": fn (core::Request::run) runs in the app's
//                              context; cooperative mode runs it right now until it waits.
//   task.notify()              "it can progress": body bytes arrived, output drained, the peer
//                              went away; called on the loop thread, adapter lock held or not.
//   task.run_pending()         at the start and end of each engine callback, with no adapter lock
//                              held: cooperative mode resumes a notified fiber here (a no-op in
//                              threads mode, where notify() woke the thread already).
//   task.orphan(code)          "it is gone": the engine will not call back for this request;
//                              waits in progress end with `code`.
// and on the app side, inside its Exchange methods:
//   task.wait(lock, pred)      blocks (threads) or yields (cooperative) until pred() holds.
//   task.wait_fd(...)          the app's wait_fd (THR-6).
// Events that come from other threads (an fd the watcher saw, the SERIAL gate, the graceful
// deadline) call the adapter's WakeFn, which must make its loop call run_pending() for this
// request soon (libmicrohttpd: resume the suspended connection).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "core/context.hh"
#include "core/futex.hh"
#include "exec/fiber.hh"
#include "exec/thread_pool.hh"

namespace cwsgi::exec {

class Task;
class FdWatcher;
class SerialGate;

/// The execution layer of one server process: the mode, the pool or the fibers' settings, the
/// watcher behind wait_fd, the SERIAL gate, and the graceful deadline.
class Executor {
public:
    struct Options {
        core::ExecMode mode = core::ExecMode::threads;
        unsigned threads = 4;                             // pool threads (threads mode)
        size_t stack_size = StackPool::kDefaultStackSize; // fiber stacks (cooperative mode)
        bool serial = false;                              // the app is CWSGI_THREADS_SERIAL
        bool inline_sync = false; // sync mode runs inline (the adapter's Tasks have block hooks)
        int log_fd = -1;          // where a stack overflow is reported too
    };
    explicit Executor(Options options);
    ~Executor();
    Executor(const Executor &) = delete;
    Executor &operator=(const Executor &) = delete;

    /// Starts the pool (threads mode). Threads: the adapter's starting thread, once.
    void start();
    /// The graceful deadline (LIFE-STOP-5): every wait_fd in progress and every later one
    /// returns CWSGI_E_SHUTDOWN. Adapters also wake their own waits. Threads: any.
    void hard_stop();
    bool hard_stopped() const { return hard_stop_.load(std::memory_order_acquire); }
    /// Stops the pool, waiting up to `timeout` for jobs in progress; false when some did not
    /// finish (see ThreadPool::stop). Threads: not a pool thread.
    bool stop(std::chrono::milliseconds timeout);

    /// The mode that runs: sync becomes threads (one thread) without Options::inline_sync.
    core::ExecMode mode() const { return opt_.mode; }
    bool cooperative() const { return opt_.mode == core::ExecMode::cooperative; }
    /// Sync mode, inline on the loop thread (THR-10).
    bool sync() const { return opt_.mode == core::ExecMode::sync; }
    const Options &options() const { return opt_; }

private:
    friend class Task;
    Options opt_;
    ThreadPool pool_;
    std::unique_ptr<FdWatcher> watcher_; // cooperative mode only, started at the first wait_fd
    std::once_flag watcher_once_;
    std::unique_ptr<SerialGate> gate_; // cooperative mode with a SERIAL app
    int hard_stop_fd_ = -1;            // eventfd, readable after hard_stop() (threads mode polls it)
    std::atomic<bool> hard_stop_{false};
    FdWatcher &watcher();
};

/// One request's execution context. Owned by the adapter's per-request object, which must
/// outlive every job the Task runs (in threads mode, until the job function returned).
class Task {
public:
    /// A job: core::Request::run, or the end of a request (core::Request::complete).
    using Fn = void (*)(void *arg, int32_t value);
    /// The adapter's hooks, all called with the `arg` given to the constructor:
    ///   wake: for wake-ups from other threads (see the file comment); must not block on the
    ///         loop, and may be called while the loop is inside one of the adapter's callbacks;
    ///   done: after each job returned, as the last thing the Task does for it (the adapter
    ///         may drop its reference to the object that holds the Task there): on the pool
    ///         thread in threads mode, on the loop thread in cooperative mode.
    ///   hold, release: keep the adapter's object alive across a wake-up from another thread
    ///         (one reference more; the release may be the last one, on that thread);
    ///   describe: names the request in a stack-overflow report (async-signal-safe; may be
    ///         nullptr);
    ///   block: sync mode only (required there): called by a wait whose condition is false, on
    ///         the loop thread inside the job, with no adapter lock held. Makes what progress the
    ///         request's I/O allows (read, decode, frame, write), and when nothing moved blocks
    ///         on the request's socket for at most the adapter's deadline tick, running the
    ///         deadlines and the graceful stop as its loop would. Returns; the wait re-checks.
    struct Hooks {
        void (*wake)(void *arg);
        void (*done)(void *arg);
        void (*hold)(void *arg);
        void (*release)(void *arg);
        Describer describe;
        void (*block)(void *arg) = nullptr;
    };

    Task(Executor &ex, const Hooks &hooks, void *arg);
    ~Task();
    Task(const Task &) = delete;
    Task &operator=(const Task &) = delete;

    /// Makes sure the next start() can run: in cooperative mode, takes a fiber and maps its
    /// stack if it has none yet. Returns false when the mapping fails (ENOMEM); the adapter
    /// then refuses the request. Threads: as start().
    bool prepare();

    /// Runs fn(arg, value) in the app's context: queued on the pool (threads mode), on a fiber
    /// of this thread, run at once until it first waits (cooperative mode), or right here to
    /// its end, the done hook included, before start() returns (sync mode). At most one
    /// job at a time: the adapter starts the next one only after the previous returned (its
    /// done hook ran). Without a prepare() that succeeded, a failed mapping aborts the process
    /// with a message; the adapter calls prepare() first where it can still refuse.
    /// Threads: the loop thread (cooperative mode: the thread whose loop owns the request).
    void start(Fn fn, void *arg, int32_t value = 0);

    /// The state the app side may wait for changed. Threads: the loop thread, or any thread
    /// holding the lock that the app's wait() uses.
    void notify();
    /// notify() from any thread, plus the adapter's wake hook in cooperative mode. The caller
    /// must have called hooks.hold before it made the change visible that the app waits for
    /// (else the request could finish and go away before the hook runs); this call releases
    /// that hold as its last step.
    void notify_from_any_thread();
    /// Cooperative mode: resumes the fiber if it was notified, until it waits again without a
    /// new notification or its job returns. No-op in threads mode. Threads: the loop thread,
    /// with none of the adapter's locks held (the fiber takes them).
    void run_pending()
    {
        // Inline, since it runs at both edges of every engine callback: most calls find
        // nothing to do.
        if (pending_.load(std::memory_order_acquire) || t_ready_count_ != 0) run_pending_slow();
    }

    /// App side: waits until pred() is true. `lk` (a std::unique_lock over any mutex; the
    /// adapters use core::FutexMutex) is held when pred() runs and on return; it is released
    /// while waiting. Threads: inside a job of this Task.
    template <class Lock, class Pred> void wait(Lock &lk, Pred pred)
    {
        if (sync_) {
            while (!pred()) {
                lk.unlock();
                hooks_.block(arg_);
                lk.lock();
            }
            return;
        }
        if (!fiber_) {
            for (;;) {
                const uint32_t g = wakeups_.generation();
                if (pred()) return;
                lk.unlock();
                wakeups_.wait(g);
                lk.lock();
            }
        }
        while (!pred()) {
            lk.unlock();
            suspend();
            lk.lock();
        }
    }

    /// App side: waits for one notify() (or a spurious wake-up): for callers that re-check
    /// their own conditions in a loop. `lk` as for wait().
    template <class Lock> void wait_once(Lock &lk)
    {
        if (sync_) {
            lk.unlock();
            hooks_.block(arg_);
            lk.lock();
            return;
        }
        if (!fiber_) {
            const uint32_t g = wakeups_.generation();
            lk.unlock();
            wakeups_.wait(g);
            lk.lock();
            return;
        }
        lk.unlock();
        suspend();
        lk.lock();
    }

    /// App side: the app's wait_fd (THR-6), arguments checked by the core. Threads and sync mode
    /// poll on the calling thread (sync: the loop thread, whose other connections wait); cooperative mode yields until
    /// the watcher sees the fd ready, the timeout passes or the graceful deadline comes. Returns the ready events,
    /// CWSGI_E_TIMEOUT or CWSGI_E_SHUTDOWN. Threads: inside a job of this Task.
    int32_t wait_fd(int fd, uint32_t events, int32_t timeout_ms);

    /// Cooperative mode with a SERIAL app: waits for the process-wide turn (THR-8) / gives it
    /// up. No-ops otherwise. Threads: inside a job of this Task.
    void enter_serial();
    void leave_serial();

    /// The connection is gone while a job may still run (loop thread, no adapter lock held):
    /// a wait_fd in progress ends now with `code` (CWSGI_E_DISCONNECTED), every later one
    /// returns it at once, and later wake-ups of this Task are run by the loop thread's next
    /// run_pending() of any request, since the engine will call this one back no more. The
    /// adapter calls run_pending() after it.
    void orphan(int32_t code);

    /// What the watcher reports to a waiting Task (internal to the execution layer).
    void on_fd_ready(int32_t result);

private:
    struct Job {
        Task *task;
        Fn fn;
        void *arg;
        int32_t value;
    };
    static void fiber_entry(void *job);
    static void pool_entry(void *job, int32_t);
    void run_pending_slow();
    void suspend();
    void step();
    void release_fiber();

    Executor &ex_;
    const Hooks &hooks_;
    void *arg_;
    const bool sync_; // sync mode, inline (THR-10)
    Job job_{};
    core::Notifier wakeups_;                              // threads mode: the app thread's wait
    Fiber *fiber_ = nullptr;                              // cooperative mode: the fiber running the current job
    bool waiting_ = false;                                // the fiber is inside suspend()
    std::atomic<int32_t> gone_code_{0};                   // set by orphan()
    static inline thread_local size_t t_ready_count_ = 0; // orphans woken on this thread
    const void *thread_ = nullptr;                        // the loop thread of a cooperative job (its fiber cache)
    // wait_fd's registration with the watcher (guarded by the watcher's mutex).
    int watch_fd_ = -1;
    bool watch_dup_ = false; // watch_fd_ is our duplicate of the app's descriptor
    uint32_t watch_events_ = 0;
    int64_t watch_deadline_ms_ = -1;
    std::atomic<bool> pending_{false};
    std::atomic<int32_t> fd_result_{0}; // what the watcher found (0: nothing yet)
    bool serial_granted_ = false;       // guarded by the gate's mutex
    friend class SerialGate;
    friend class FdWatcher;
};

} // namespace cwsgi::exec
