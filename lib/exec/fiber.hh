// fiber.hh: user-space stacks for the cooperative mode: handle() runs on a Fiber on the event-loop
// thread, and a read/write that cannot complete now yields back to the loop, which resumes the
// fiber later on the same thread (gevent's idea, without monkey patching).
//
// A Fiber is a worker, not a one-shot coroutine: start(fn, arg) gives it a job, resume() runs
// the job until it yields or returns, and when it returns the fiber parks on its own stack,
// ready for the next start(). A request that never blocks costs one switch in and one out, and
// nothing is allocated in the steady state: the stack is mapped once per Fiber (and reused from
// the StackPool when Fibers come and go).
//
// The switch is Boost.Context's fcontext (jump_fcontext/make_fcontext, the assembly that
// boost::context::fiber is built on) rather than boost::context::fiber itself. The speed is the
// same (fiber::resume is a jump_fcontext plus a pointer exchange); the reason is control:
// fiber's constructor jumps onto the new stack and back to hand over its record, and its
// destructor unwinds a suspended stack with a forced_unwind exception, both switches we could
// not annotate for AddressSanitizer (Debian's Boost 1.74 annotates only its ucontext backend).
// With fcontext every switch is one of ours: the loop's resume(), the fiber's yield/park, its
// first entry and its final exit, each annotated with __sanitizer_start/finish_switch_fiber.
//
// Each switch also swaps, per fiber: errno, and the C++ runtime's per-thread exception state
// (the chain of caught exceptions and the uncaught count), so that a handle() that yields
// inside a catch block (to write an error page, say) neither sees nor corrupts another
// fiber's exceptions, and `throw;` rethrows its own.
//
// Stack overflow: the lowest kGuardSize bytes of every stack are PROT_NONE. The first time a
// thread resumes a fiber it gets an alternate signal stack and the process gets (once) a
// SIGSEGV/SIGBUS handler; a fault in the running fiber's guard area prints one line naming the
// request (see Fiber::set_describer) and kills the process with SIGSEGV. Any other fault goes
// to the handler that was there before, or the default action.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace cwsgi::exec {

/// Stacks for Fibers, kept for reuse. One pool per thread that runs fibers.
///
/// A stack is one mmap (MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE|MAP_STACK): the guard area at
/// its low end, then the usable part. Pages are committed only as the fiber touches them, so a
/// 256 KiB stack of which requests use 12 KiB costs 12 KiB of memory (a reused stack keeps the
/// pages its deepest job touched: giving them back would cost a syscall per request).
/// Threads: one thread at a time (not thread-safe); Fibers made from a pool belong to the
/// thread that made them.
class StackPool {
public:
    /// The default usable size. Ordinary C++ request code (a few frames of parsing, a JSON
    /// library, fmt, a 16 KiB buffer or two) stays well under 64 KiB; 256 KiB leaves room for
    /// recursive code and libraries with big frames, since a fixed stack cannot grow the way
    /// a goroutine's does, and costs only address space beyond what is touched. An app that
    /// needs more says so with --stack-size.
    static constexpr size_t kDefaultStackSize = 256 * 1024;
    /// The PROT_NONE area below each stack. More than one page because a frame larger than the
    /// guard can skip over it and write into the neighbouring mapping (another fiber's stack):
    /// 64 KiB catches frames up to that size, which covers a `char buf[32768]` near the limit.
    /// It costs address space only. Code with larger frames should be built with
    /// -fstack-clash-protection, which touches every page of a large frame in order.
    static constexpr size_t kGuardSize = 64 * 1024;
    /// Freed stacks kept for reuse before they are unmapped.
    static constexpr size_t kDefaultKeep = 64;

    /// One stack: [map, map + kGuardSize) is the guard, [lo(), hi()) the usable part.
    struct Stack {
        char *map = nullptr;
        size_t map_size = 0;
        char *lo() const { return map + kGuardSize; }
        char *hi() const { return map + map_size; }
        explicit operator bool() const { return map != nullptr; }
    };

    /// `stack_size` is the usable size, rounded up to whole pages (at least one page).
    /// At most `keep` freed stacks are kept for reuse; more are unmapped.
    explicit StackPool(size_t stack_size = kDefaultStackSize, size_t keep = kDefaultKeep);
    /// Unmaps the kept stacks. Every Fiber made from this pool must be destroyed first.
    ~StackPool();
    StackPool(const StackPool &) = delete;
    StackPool &operator=(const StackPool &) = delete;

    /// A kept stack, or a newly mapped one. Returns an empty Stack (errno set by mmap or
    /// mprotect, usually ENOMEM) when the mapping fails. Ownership: the caller's, until
    /// release().
    Stack acquire();
    /// Gives back a stack from acquire(): kept for reuse, or unmapped when `keep` are kept.
    void release(Stack s);

    /// The usable size of every stack, after rounding.
    size_t stack_size() const { return stack_size_; }
    /// Stacks kept for reuse now.
    size_t kept() const { return free_.size(); }
    /// Stacks mapped since the pool was made (a steady state maps none).
    uint64_t maps() const { return maps_; }

private:
    size_t stack_size_;
    size_t keep_;
    std::vector<Stack> free_; // reserved up front: release() never allocates
    uint64_t maps_ = 0;
};

/// A bounded text buffer that a Describer appends to from inside a signal handler: memcpy
/// only, no allocation, no locale, silently cut at the capacity.
class DescribeBuf {
public:
    DescribeBuf(char *buf, size_t cap) : buf_(buf), cap_(cap) {}
    void put(std::string_view s);
    void put(uint64_t n); // decimal
    size_t size() const { return len_; }
    const char *data() const { return buf_; }

private:
    char *buf_;
    size_t cap_;
    size_t len_ = 0;
};

/// A fiber's job: runs on the fiber's stack with the `arg` given to start(). It must not
/// throw (an exception leaving it terminates the process); exceptions thrown and caught inside
/// it work as anywhere else, across yields too.
using FiberFn = void (*)(void *arg);

/// Writes what the running fiber is doing (e.g. "request 42 GET /deep") into `out`. Called
/// only from the stack-overflow handler, on the fiber's thread, with the fiber stopped at an
/// arbitrary point: it must be async-signal-safe (read plain fields, DescribeBuf::put only)
/// and must not rely on the request's state being consistent beyond fields it set itself.
using Describer = void (*)(void *arg, DescribeBuf &out);

class Fiber {
public:
    /// A fiber bound to the calling thread, taking its stack from `pool` (which must outlive
    /// it) at the first start(). Nothing is mapped or switched yet.
    explicit Fiber(StackPool &pool);
    /// Gives the stack back to the pool. A parked fiber (done()) is first switched in once so
    /// that it leaves its stack cleanly. Aborts with a message when a job is in progress
    /// (started and resumed but not finished: its frames would be lost without unwinding),
    /// or when called on another thread than the fiber's. A job started but never resumed is
    /// dropped.
    ~Fiber();
    Fiber(const Fiber &) = delete;
    Fiber &operator=(const Fiber &) = delete;

    /// Gives an idle fiber (done()) its next job; resume() runs it. Returns false, changing
    /// nothing, when a job is in progress, when called on another thread than the fiber's, or
    /// when the first start() cannot map a stack (errno ENOMEM). Cost: a few stores.
    bool start(FiberFn fn, void *arg);

    /// Runs the fiber's job until it yields or returns; then resume() returns true, with the
    /// loop's errno as it was before the call. Called from the loop, on a normal stack, on the
    /// fiber's thread, after start() or after a yield. Returns false, changing nothing, when
    /// called on another thread than the one that made the fiber, from inside a fiber (fibers
    /// do not nest: the loop resumes each), or when there is nothing to run (done() and not
    /// started). The first resume() on a thread sets up the overflow report (see the file
    /// comment).
    bool resume();

    /// Switches from the running fiber back to the loop; returns when the loop resumes this
    /// fiber again. Called from inside a job only: on a normal stack it aborts with a message.
    static void yield();

    /// The fiber running on this thread, or nullptr on a normal stack. Threads: any.
    static Fiber *current();

    /// True when no job is in progress: before the first start(), and after a job returned.
    /// False from start() until the job returns (while it runs or is suspended in yield()).
    bool done() const { return state_ == State::idle; }

    /// Sets how the overflow report describes this fiber's job (nullptr: "no request
    /// description"). Two stores, so an owner can set it once per fiber with `arg` pointing
    /// at its per-request state, and pay nothing per request. `arg` is the caller's.
    void set_describer(Describer fn, void *arg)
    {
        describer_ = fn;
        describer_arg_ = arg;
    }

    /// The usable stack size (the pool's).
    size_t stack_size() const { return pool_.stack_size(); }

    /// Where the overflow report goes besides stderr (2): one more fd, e.g. the server's log
    /// file, or -1 (the default) for none. Threads: any; read from the signal handler.
    static void set_overflow_log_fd(int fd);

private:
    friend struct FiberImpl; // the entry point and the fault handler, in fiber.cc

    enum class State : uint8_t {
        idle,      // no job; parked after the last one, or never entered
        ready,     // start() gave a job; the next resume() runs it
        running,   // on the CPU now
        suspended, // inside yield()
    };
    struct EhState { // the C++ runtime's per-thread exception state (Itanium C++ ABI)
        void *caught = nullptr;
        unsigned int uncaught = 0;
    };

    [[noreturn]] void run_jobs();
    void switch_in();
    void switch_out();
    void run_job() noexcept;
    bool on_own_thread() const;

    StackPool &pool_;
    StackPool::Stack stack_;
    const void *owner_;        // identifies the thread that made the fiber
    void *ctx_ = nullptr;      // the fiber's saved context while it is not running
    void *loop_ctx_ = nullptr; // the loop's saved context while the fiber runs
    State state_ = State::idle;
    bool entered_ = false; // the fiber's stack has frames (it ran at least once)
    bool stopping_ = false;
    FiberFn fn_ = nullptr;
    void *arg_ = nullptr;
    Describer describer_ = nullptr;
    void *describer_arg_ = nullptr;
    int errno_ = 0;
    EhState eh_;
    // AddressSanitizer's view of the switches: the fiber's fake stack while it is switched
    // out, and the loop's stack bounds as the fiber last saw them.
    void *asan_fake_ = nullptr;
    const void *loop_stack_ = nullptr;
    size_t loop_stack_size_ = 0;
};

} // namespace cwsgi::exec
