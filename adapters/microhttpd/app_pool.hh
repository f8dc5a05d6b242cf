// app_pool.hh: the threads that run the app (--threads of them), apart from libmicrohttpd's
// event-loop threads, so that an app blocking in handle(), read() or write() never stalls
// other connections.
#pragma once

#include <chrono>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace cwsgi::adapters::mhd {

class Bridge;

class AppPool {
public:
    /// What a job does with its Bridge; the job owns one reference to it.
    enum class Kind : uint8_t { run, complete };
    struct Job {
        Bridge *bridge;
        Kind kind;
        int32_t outcome;                                   // for Kind::complete
        std::chrono::steady_clock::time_point queued_at{}; // set by submit()
    };

    AppPool() = default;
    ~AppPool();
    AppPool(const AppPool &) = delete;
    AppPool &operator=(const AppPool &) = delete;

    /// Starts `threads` (at least 1) workers.
    void start(unsigned threads);

    /// Queues a job; a worker runs it in submission order. Threads: any.
    void submit(Job job);

    /// Lets the workers finish every queued job, then waits for them up to `timeout`.
    /// Returns true when all exited and were joined; false when some are still inside the app
    /// (they are detached: the caller must then keep alive everything a job can reach).
    bool stop(std::chrono::milliseconds timeout);

private:
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
    static void worker(std::shared_ptr<State> st);
    static void monitor(std::shared_ptr<State> st);

    std::shared_ptr<State> st_ = std::make_shared<State>();
    std::vector<std::thread> threads_;
};

} // namespace cwsgi::adapters::mhd
