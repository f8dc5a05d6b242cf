// thread_pool.hh: the threads that run the app in threads mode (--threads of them), apart from
// the adapter's event-loop threads, so that an app blocking in handle(), read() or write() never
// stalls other connections.
//
// A job is a plain function pointer with a pointer and a number: queueing one allocates nothing
// beyond the deque's own storage, which is kept between jobs. The pool is tuned for a request
// rate where the next job comes within microseconds: one idle worker spins briefly before it
// sleeps, and a sleeping worker is woken only when no other could take the job soon (see
// submit() and thread_pool.cc).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cwsgi::exec {

/// A job's function: runs on a worker thread with the `arg` and `value` given to submit().
/// It must not throw (an exception leaving it terminates the process).
using JobFn = void (*)(void *arg, int32_t value);

class ThreadPool {
public:
    ThreadPool() = default;
    ~ThreadPool();
    ThreadPool(const ThreadPool &) = delete;
    ThreadPool &operator=(const ThreadPool &) = delete;

    /// Starts `threads` (at least 1) workers and the monitor, named `name` in top and perf
    /// (at most 15 characters; "<name>-mon" for the monitor, cut to 15). Called once.
    void start(unsigned threads, const char *name = "cwsgi-app");

    /// Queues a job; the workers take jobs in submission order (with more than one worker,
    /// jobs may still run at the same time and finish in any order). Jobs queued before
    /// stop() all run. `arg` is the job's: the pool neither reads nor frees it.
    /// Threads: any, including a worker inside a job.
    void submit(JobFn fn, void *arg, int32_t value = 0);

    /// Lets the workers finish every queued job, then waits for them up to `timeout`.
    /// Returns true when all exited and were joined; false when some are still inside a job
    /// (they are detached: the caller must then keep alive everything a job can reach).
    /// Threads: not a worker. Called once; a job submitted after it may not run.
    bool stop(std::chrono::milliseconds timeout);

private:
    struct Job {
        JobFn fn;
        void *arg;
        int32_t value;
        std::chrono::steady_clock::time_point queued_at; // for the monitor
    };
    struct State {
        std::mutex mu;
        std::condition_variable cv;     // a job for a sleeping worker, or stop
        std::condition_variable exited; // a worker left
        std::condition_variable tick;   // wakes the monitor
        std::deque<Job> jobs;
        std::atomic<size_t> queued{0}; // jobs.size(), readable without the mutex
        bool stopping = false;
        unsigned alive = 0;    // workers and the monitor not yet exited
        unsigned sleeping = 0; // workers blocked on cv
        unsigned spinning = 0; // workers looking for work without sleeping (0 or 1)
        unsigned busy = 0;     // workers running a job
        bool ticking = false;  // the monitor checks the queue periodically
        std::chrono::steady_clock::time_point last_work{};
    };
    static void worker(std::shared_ptr<State> st, std::string name);
    static void monitor(std::shared_ptr<State> st, std::string name);

    std::shared_ptr<State> st_ = std::make_shared<State>();
    std::vector<std::thread> threads_;
};

} // namespace cwsgi::exec
