// fiber.cc: fibers on pooled, guarded stacks, and the stack-overflow report (see fiber.hh).
#include "fiber.hh"

#include <cxxabi.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <boost/context/detail/fcontext.hpp>

#if defined(__SANITIZE_ADDRESS__)
#define CWSGI_EXEC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CWSGI_EXEC_ASAN 1
#endif
#endif
#if defined(CWSGI_EXEC_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace bctx = boost::context::detail;

namespace cwsgi::exec {

namespace {

// The fiber running on this thread. initial-exec: the fault handler reads it, and a TLS access
// that could allocate (the general-dynamic model's first touch) is not async-signal-safe. Its
// address also names the thread (Fiber::owner_), cheaper than pthread_self() + pthread_equal.
__attribute__((tls_model("initial-exec"))) thread_local Fiber *t_current = nullptr;
// This thread has its alternate signal stack and the process its fault handler.
__attribute__((tls_model("initial-exec"))) thread_local bool t_prepared = false;

std::atomic<int> g_log_fd{-1};

[[noreturn]] void die(const char *msg)
{
    std::fprintf(stderr, "cwsgi: %s\n", msg);
    std::abort();
}

size_t page_size()
{
    static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return page;
}

size_t round_to_pages(size_t n)
{
    const size_t page = page_size();
    return n == 0 ? page : (n + page - 1) / page * page;
}

// ---- ASan: tell it about every stack switch ------------------------------------------------
// Without this, ASan believes the thread is still on its original stack: an exception thrown
// on a fiber makes it unpoison the wrong range (and warn), and stack-use checks misfire.

inline void asan_start(void **fake_save, const void *bottom, size_t size)
{
#if defined(CWSGI_EXEC_ASAN)
    __sanitizer_start_switch_fiber(fake_save, bottom, size);
#else
    (void)fake_save;
    (void)bottom;
    (void)size;
#endif
}

inline void asan_finish(void *fake, const void **bottom_old, size_t *size_old)
{
#if defined(CWSGI_EXEC_ASAN)
    __sanitizer_finish_switch_fiber(fake, bottom_old, size_old);
#else
    (void)fake;
    (void)bottom_old;
    (void)size_old;
#endif
}

// ---- the C++ runtime's per-thread exception state --------------------------------------
// __cxa_get_globals() returns {caughtExceptions, uncaughtExceptions} in libstdc++ and
// libc++abi alike (the Itanium C++ ABI layout; ARM's EHABI adds a field, refused below). It is
// per thread, so fibers sharing a thread must each keep their own copy across switches.
#if defined(__ARM_EABI_UNWINDER__)
#error "the ARM EHABI __cxa_eh_globals has another layout: teach fiber.cc about it"
#endif
__attribute__((tls_model("initial-exec"))) thread_local void *t_eh = nullptr;

inline void *eh_globals()
{
    if (t_eh == nullptr) t_eh = abi::__cxa_get_globals();
    return t_eh;
}

// ---- alternate signal stack, one per thread that runs fibers -------------------------------
// A fault on an exhausted fiber stack cannot push a signal frame there: without a separate
// stack the kernel kills the process before any handler runs, which is the silent SIGSEGV the
// report exists to avoid.
struct AltStack {
    char *map = nullptr;
    size_t size = 0;

    AltStack()
    {
        stack_t old{};
        if (sigaltstack(nullptr, &old) == 0 && (old.ss_flags & SS_DISABLE) == 0) {
            return; // someone (ASan, the app) gave this thread one already: use theirs
        }
        size = round_to_pages(std::max<size_t>(64 * 1024, 4 * static_cast<size_t>(sysconf(_SC_MINSIGSTKSZ))));
        void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) {
            size = 0;
            return; // no report on this thread; fibers still work
        }
        stack_t ss{};
        ss.ss_sp = p;
        ss.ss_size = size;
        if (sigaltstack(&ss, nullptr) != 0) {
            munmap(p, size);
            size = 0;
            return;
        }
        map = static_cast<char *>(p);
    }
    ~AltStack()
    {
        if (map == nullptr) return;
        stack_t cur{};
        if (sigaltstack(nullptr, &cur) == 0 && cur.ss_sp == map) {
            stack_t off{};
            off.ss_flags = SS_DISABLE;
            sigaltstack(&off, nullptr);
        }
        munmap(map, size);
    }
    AltStack(const AltStack &) = delete;
    AltStack &operator=(const AltStack &) = delete;
};

// ---- the fault handler, once per process ---------------------------------------------------
struct sigaction g_prev_segv, g_prev_bus;

void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        p += w;
        n -= static_cast<size_t>(w);
    }
}

[[noreturn]] void die_by(int sig)
{
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, nullptr);
    raise(sig); // pending until the handler returns; the faulting access would re-fault anyway
    // Blocked while this handler runs: unblock so the default action happens now.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, nullptr);
    _exit(128 + sig); // not reached
}

// Hands a fault that is not a fiber overflow to whoever had the signal before, as if we had
// never been installed.
void chain(int sig, siginfo_t *si, void *uc)
{
    const struct sigaction &prev = sig == SIGSEGV ? g_prev_segv : g_prev_bus;
    if ((prev.sa_flags & SA_SIGINFO) != 0) {
        if (prev.sa_sigaction != nullptr) {
            prev.sa_sigaction(sig, si, uc);
            return;
        }
    } else if (prev.sa_handler == SIG_IGN) {
        // The kernel does not let a fault be ignored (it would re-fault forever): it applies
        // the default action, and so do we. A kill(2)ed SIGSEGV is ignored as asked.
        if (si->si_code <= 0) return;
    } else if (prev.sa_handler != SIG_DFL) {
        prev.sa_handler(sig);
        return;
    }
    die_by(sig);
}

} // namespace

// The pieces that need Fiber's private members: the entry point and the fault handler.
struct FiberImpl {
    static void entry(bctx::transfer_t t)
    {
        auto *self = static_cast<Fiber *>(t.data);
        self->loop_ctx_ = t.fctx;
        // First arrival on this stack: no fake stack of ours to restore.
        asan_finish(nullptr, &self->loop_stack_, &self->loop_stack_size_);
        self->run_jobs();
    }

    static bool report_if_overflow(const void *addr)
    {
        const Fiber *f = t_current;
        if (f == nullptr) return false;
        const char *a = static_cast<const char *>(addr);
        if (a < f->stack_.map || a >= f->stack_.lo()) return false;
        char line[512];
        DescribeBuf out(line, sizeof line - 1);
        out.put("cwsgi: stack overflow in handle() (fiber stack ");
        out.put(static_cast<uint64_t>(f->pool_.stack_size() / 1024));
        out.put(" KiB): ");
        if (f->describer_ != nullptr) {
            f->describer_(f->describer_arg_, out);
        } else {
            out.put("no request description");
        }
        out.put("; raise --stack-size");
        line[out.size()] = '\n';
        write_all(2, line, out.size() + 1);
        const int fd = g_log_fd.load(std::memory_order_relaxed);
        if (fd >= 0 && fd != 2) write_all(fd, line, out.size() + 1);
        return true;
    }

    static void on_fault(int sig, siginfo_t *si, void *uc)
    {
        const int saved = errno;
        // si_addr is the faulting address only for faults the kernel raised (si_code > 0).
        if (si != nullptr && si->si_code > 0 && report_if_overflow(si->si_addr)) die_by(sig);
        errno = saved;
        chain(sig, si, uc);
    }

    static void install_handlers()
    {
        struct sigaction sa {};
        sa.sa_sigaction = &FiberImpl::on_fault;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &g_prev_segv);
        sigaction(SIGBUS, &sa, &g_prev_bus);
    }

    static void prepare_thread()
    {
        static std::once_flag once;
        std::call_once(once, &FiberImpl::install_handlers);
        thread_local AltStack alt; // made now, freed at thread exit
        (void)alt;
        t_prepared = true;
    }
};

// ---- DescribeBuf ---------------------------------------------------------------------------

void DescribeBuf::put(std::string_view s)
{
    const size_t n = std::min(s.size(), cap_ - len_);
    std::memcpy(buf_ + len_, s.data(), n);
    len_ += n;
}

void DescribeBuf::put(uint64_t n)
{
    char digits[20];
    size_t i = sizeof digits;
    do {
        digits[--i] = static_cast<char>('0' + n % 10);
        n /= 10;
    } while (n != 0);
    put(std::string_view(digits + i, sizeof digits - i));
}

// ---- StackPool -----------------------------------------------------------------------------

StackPool::StackPool(size_t stack_size, size_t keep) : stack_size_(round_to_pages(stack_size)), keep_(keep)
{
    free_.reserve(keep_);
}

StackPool::~StackPool()
{
    for (Stack &s : free_) munmap(s.map, s.map_size);
}

StackPool::Stack StackPool::acquire()
{
    if (!free_.empty()) {
        Stack s = free_.back();
        free_.pop_back();
        return s;
    }
    const size_t len = kGuardSize + stack_size_;
    void *p =
        mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (p == MAP_FAILED) return {};
    if (mprotect(p, kGuardSize, PROT_NONE) != 0) {
        const int e = errno;
        munmap(p, len);
        errno = e;
        return {};
    }
    ++maps_;
    return {static_cast<char *>(p), len};
}

void StackPool::release(Stack s)
{
    if (!s) return;
#if defined(CWSGI_EXEC_ASAN)
    // A fiber's last frames never return (it leaves with a jump), so their redzones are still
    // poisoned: the stack's next user must not trip over them.
    ASAN_UNPOISON_MEMORY_REGION(s.lo(), stack_size_);
#endif
    if (free_.size() < keep_) {
        free_.push_back(s);
    } else {
        munmap(s.map, s.map_size);
    }
}

// ---- Fiber ---------------------------------------------------------------------------------

Fiber::Fiber(StackPool &pool) : pool_(pool), owner_(&t_current) {}

Fiber::~Fiber()
{
    if (!stack_) return;
    if (!on_own_thread()) die("Fiber destroyed on another thread than the one that made it");
    if (state_ == State::running || state_ == State::suspended) {
        die("Fiber destroyed with a job in progress (resume it until done() first)");
    }
    if (entered_) {
        // Parked in run_jobs: let it leave its stack by the front door (the final switch,
        // annotated for ASan) instead of dropping a stack ASan still thinks is live.
        stopping_ = true;
        state_ = State::running;
        switch_in();
    }
    pool_.release(stack_);
}

bool Fiber::on_own_thread() const { return owner_ == &t_current; }

Fiber *Fiber::current() { return t_current; }

void Fiber::set_overflow_log_fd(int fd) { g_log_fd.store(fd, std::memory_order_relaxed); }

bool Fiber::start(FiberFn fn, void *arg)
{
    if (state_ != State::idle || !on_own_thread()) return false;
    if (!stack_) {
        stack_ = pool_.acquire();
        if (!stack_) {
            errno = ENOMEM;
            return false;
        }
        ctx_ = bctx::make_fcontext(stack_.hi(), pool_.stack_size(), &FiberImpl::entry);
    }
    fn_ = fn;
    arg_ = arg;
    state_ = State::ready;
    return true;
}

bool Fiber::resume()
{
    if (!on_own_thread() || t_current != nullptr) return false;
    if (state_ != State::ready && state_ != State::suspended) return false;
    if (!t_prepared) FiberImpl::prepare_thread();
    state_ = State::running;
    switch_in();
    return true;
}

void Fiber::yield()
{
    Fiber *f = t_current;
    if (f == nullptr) die("Fiber::yield() called outside a fiber");
    f->state_ = State::suspended;
    f->switch_out();
}

// The loop's half of a switch: everything per-thread that a fiber may change is swapped here,
// on the loop's side, so the fiber's side stays two jumps.
void Fiber::switch_in()
{
    // Field by field: a 16-byte copy of what was just stored as 8 + 4 bytes stalls on store
    // forwarding, and this runs twice per switch.
    auto *eh = static_cast<EhState *>(eh_globals());
    void *const loop_caught = eh->caught;
    const unsigned int loop_uncaught = eh->uncaught;
    eh->caught = eh_.caught;
    eh->uncaught = eh_.uncaught;
    const int loop_errno = errno;
    errno = errno_;
    t_current = this;
    entered_ = true;

    void *loop_fake = nullptr;
    asan_start(&loop_fake, stack_.lo(), pool_.stack_size());
    bctx::transfer_t t = bctx::jump_fcontext(ctx_, this);
    asan_finish(loop_fake, nullptr, nullptr);
    ctx_ = t.fctx;

    t_current = nullptr;
    errno_ = errno;
    errno = loop_errno;
    eh_.caught = eh->caught;
    eh_.uncaught = eh->uncaught;
    eh->caught = loop_caught;
    eh->uncaught = loop_uncaught;
}

void Fiber::switch_out()
{
    asan_start(&asan_fake_, loop_stack_, loop_stack_size_);
    bctx::transfer_t t = bctx::jump_fcontext(loop_ctx_, nullptr);
    loop_ctx_ = t.fctx;
    asan_finish(asan_fake_, &loop_stack_, &loop_stack_size_);
}

void Fiber::run_job() noexcept { fn_(arg_); }

void Fiber::run_jobs()
{
    for (;;) {
        if (stopping_) break;
        run_job();
        fn_ = nullptr;
        arg_ = nullptr;
        state_ = State::idle;
        switch_out(); // park: resume() returns with done() true
    }
    // The final switch: this stack is never used again, so its fake stack goes (nullptr).
    asan_start(nullptr, loop_stack_, loop_stack_size_);
    bctx::jump_fcontext(loop_ctx_, nullptr);
    __builtin_unreachable();
}

} // namespace cwsgi::exec
