// scoreboard.cc: the shared worker table and the worker side of the core's probe.
#include "scoreboard.hh"

#include <sys/mman.h>
#include <time.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace cwsgi::arbiter {

int64_t now_ms()
{
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    // +1: a beat of 0 means "never", even on a machine that just booted.
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000 + 1;
}

void WorkerSlot::reset(int64_t now)
{
    beat_ms.store(now, std::memory_order_relaxed);
    state.store(static_cast<uint32_t>(WorkerState::booting), std::memory_order_relaxed);
    requests.store(0, std::memory_order_relaxed);
    unrecorded.store(0, std::memory_order_relaxed);
    loops.store(0, std::memory_order_relaxed);
    for (auto &f : fiber_since_ms) f.store(0, std::memory_order_relaxed);
    for (auto &r : in_flight) {
        r.started_ms.store(0, std::memory_order_relaxed);
        r.id.store(0, std::memory_order_relaxed);
    }
}

Scoreboard::~Scoreboard()
{
    if (slots_ != nullptr) ::munmap(slots_, sizeof(WorkerSlot) * kSlots);
}

bool Scoreboard::map(std::string &error)
{
    void *p = ::mmap(nullptr, sizeof(WorkerSlot) * kSlots, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        error = fmt::format("cannot map the worker table: {}", std::strerror(errno));
        return false;
    }
    // Anonymous memory is zero, which is every atomic's initial value: no constructor needed.
    slots_ = static_cast<WorkerSlot *>(p);
    return true;
}

std::vector<RequestSnapshot> Scoreboard::in_flight(size_t i) const
{
    std::vector<RequestSnapshot> out;
    for (const RequestRecord &r : slots_[i].in_flight) {
        uint64_t id = r.id.load(std::memory_order_acquire);
        int64_t started = r.started_ms.load(std::memory_order_acquire);
        if (id == 0 || started == 0) continue;
        RequestSnapshot s;
        s.id = id;
        s.started_ms = started;
        s.method.assign(r.method, ::strnlen(r.method, sizeof r.method));
        s.target.assign(r.target, ::strnlen(r.target, sizeof r.target));
        if (r.id.load(std::memory_order_acquire) != id) continue; // reused while we read
        out.push_back(std::move(s));
    }
    return out;
}

int64_t Scoreboard::longest_fiber_ms(size_t i, int64_t now) const
{
    int64_t longest = 0;
    uint32_t n = std::min<uint32_t>(slots_[i].loops.load(std::memory_order_acquire), WorkerSlot::kLoops);
    for (uint32_t k = 0; k < n; ++k) {
        int64_t since = slots_[i].fiber_since_ms[k].load(std::memory_order_relaxed);
        if (since != 0 && now - since > longest) longest = now - since;
    }
    return longest;
}

// ---- the worker side: the core's probe writes into this process's slot ----------------------

namespace {

WorkerSlot *g_slot = nullptr;
uint64_t g_max_requests = 0;
void (*g_on_limit)() = nullptr;
thread_local int t_loop = -2; // -2: not registered yet; -1: no room

void copy_text(char *dst, size_t cap, std::string_view s)
{
    size_t n = std::min(cap - 1, s.size());
    std::memcpy(dst, s.data(), n);
    dst[n] = '\0';
}

int probe_request_started(uint64_t id, std::string_view method, std::string_view target)
{
    for (size_t k = 0; k < WorkerSlot::kRequests; ++k) {
        RequestRecord &r = g_slot->in_flight[k];
        uint64_t expected = 0;
        if (!r.id.compare_exchange_strong(expected, id, std::memory_order_acq_rel)) continue;
        copy_text(r.method, sizeof r.method, method);
        copy_text(r.target, sizeof r.target, target);
        r.started_ms.store(now_ms(), std::memory_order_release);
        return static_cast<int>(k);
    }
    g_slot->unrecorded.fetch_add(1, std::memory_order_relaxed);
    return -2; // counted, not recorded
}

void probe_request_ended(int token)
{
    if (token >= 0) {
        RequestRecord &r = g_slot->in_flight[token];
        r.started_ms.store(0, std::memory_order_relaxed);
        r.id.store(0, std::memory_order_release);
    } else if (token == -2) {
        g_slot->unrecorded.fetch_sub(1, std::memory_order_relaxed);
    }
    uint64_t n = g_slot->requests.fetch_add(1, std::memory_order_relaxed) + 1;
    if (g_max_requests != 0 && n == g_max_requests && g_on_limit != nullptr) g_on_limit();
}

void probe_fiber_running(bool running)
{
    if (t_loop == -2) {
        uint32_t k = g_slot->loops.fetch_add(1, std::memory_order_acq_rel);
        t_loop = k < WorkerSlot::kLoops ? static_cast<int>(k) : -1;
    }
    if (t_loop < 0) return;
    g_slot->fiber_since_ms[t_loop].store(running ? now_ms() : 0, std::memory_order_relaxed);
}

const core::WorkerProbe kProbe = {&probe_request_started, &probe_request_ended, &probe_fiber_running};

} // namespace

void Scoreboard::install_probe(size_t i, uint64_t max_requests, void (*on_limit)())
{
    g_slot = &slots_[i];
    g_max_requests = max_requests;
    g_on_limit = on_limit;
    core::set_worker_probe(&kProbe);
}

std::string describe_requests(const std::vector<RequestSnapshot> &requests, int64_t now)
{
    if (requests.empty()) return "no request";
    std::string out;
    for (const RequestSnapshot &r : requests) {
        if (!out.empty()) out += ", ";
        out += fmt::format("req {} {} {} ({:.1f} s)", r.id, r.method, r.target, (now - r.started_ms) / 1000.0);
    }
    return out;
}

} // namespace cwsgi::arbiter
