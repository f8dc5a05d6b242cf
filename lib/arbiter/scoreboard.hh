// scoreboard.hh: the memory a master shares with its workers (mapped before the first fork), one
// slot per worker: its heartbeat, its state, the requests it is serving and how long each of its
// event-loop threads has been running one fiber. Workers write their own slot; the master reads
// every slot to find hung workers and to name the requests of one that died.
//
// Every field is a lock-free atomic or a text written before the atomic that publishes it, so a
// worker that dies in the middle of a write leaves at worst one garbled name, never a lock held.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/probe.hh"

namespace cwsgi::arbiter {

/// Milliseconds of CLOCK_MONOTONIC, the clock master and workers share. Coarse (a few ms), cheap.
int64_t now_ms();

/// What a worker is doing, as the master sees it.
enum class WorkerState : uint32_t {
    free = 0,    // slot unused
    booting = 1, // forked, loading the app or running worker_start
    ready = 2,   // serving
    retiring = 3 // stopping by itself (max requests) or told to; a replacement may start now
};

/// One request a worker is serving: from just before handle() to the end of the request.
struct RequestRecord {
    std::atomic<uint64_t> id{0};        // 0 = free; claimed with a compare-exchange
    std::atomic<int64_t> started_ms{0}; // 0 until method and target are written
    char method[16];
    char target[104];
};

/// One worker's slot.
struct WorkerSlot {
    static constexpr size_t kRequests = 16; // requests recorded at once; more are only counted
    static constexpr size_t kLoops = 32;    // event-loop threads watched

    std::atomic<int64_t> beat_ms{0};             // last heartbeat of the worker's ticker thread
    std::atomic<uint32_t> state{0};              // WorkerState
    std::atomic<uint64_t> requests{0};           // requests ended in this worker
    std::atomic<uint32_t> unrecorded{0};         // requests in flight beyond kRequests
    std::atomic<uint32_t> loops{0};              // loop threads that registered
    std::atomic<int64_t> fiber_since_ms[kLoops]; // 0, or when that loop thread began running a fiber
    RequestRecord in_flight[kRequests];

    /// Clears the slot for a new worker (master, before the fork).
    void reset(int64_t now);
};

/// A request as the master read it from a slot.
struct RequestSnapshot {
    uint64_t id = 0;
    int64_t started_ms = 0;
    std::string method, target;
};

/// The shared table. Created by the master before it forks; workers inherit the mapping.
class Scoreboard {
public:
    static constexpr size_t kSlots = 256; // the most workers alive at once (HUP doubles them for a while)

    Scoreboard() = default;
    ~Scoreboard();
    Scoreboard(const Scoreboard &) = delete;
    Scoreboard &operator=(const Scoreboard &) = delete;

    /// Maps the table (anonymous, shared). False with `error` set on failure.
    bool map(std::string &error);
    WorkerSlot &slot(size_t i) { return slots_[i]; }
    const WorkerSlot &slot(size_t i) const { return slots_[i]; }

    /// The requests slot `i` records now (master side; a torn record is skipped).
    std::vector<RequestSnapshot> in_flight(size_t i) const;
    /// The longest time, in ms, that one event-loop thread of slot `i` has been running one
    /// fiber (0 when none runs one now).
    int64_t longest_fiber_ms(size_t i, int64_t now) const;

    /// Worker side: makes this process record into slot `i` and installs the core's probe
    /// (core::set_worker_probe). `max_requests` (0 = none) calls `on_limit` once, from the
    /// thread that ended the request that reached it.
    void install_probe(size_t i, uint64_t max_requests, void (*on_limit)());

private:
    WorkerSlot *slots_ = nullptr;
};

/// "req 17 GET /x (2.5 s)", the requests of a snapshot for a log line ("no request" when empty).
std::string describe_requests(const std::vector<RequestSnapshot> &requests, int64_t now);

} // namespace cwsgi::arbiter
