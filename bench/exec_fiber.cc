// exec_fiber.cc: what a fiber costs (lib/exec/fiber.hh), next to the switches it is built on.
// Prints nanoseconds per operation, the best of ROUNDS runs of N operations (the least
// disturbed by other processes on a shared machine):
//   job        Fiber::start + resume of a job that returns (one request that never blocks)
//   yield      Fiber::yield + resume round trip (one read/write that had to wait)
//   fcontext   a bare jump_fcontext round trip (the floor)
//   bctx-fiber boost::context::fiber resume round trip (the alternative we did not take)
// Usage: bench_exec_fiber [N=1000000] [ROUNDS=5]
#include <boost/context/detail/fcontext.hpp>
#include <boost/context/fiber.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "exec/fiber.hh"

using namespace cwsgi::exec;
namespace bctx = boost::context;

namespace {

using Clock = std::chrono::steady_clock;

template <class F> double best_ns(long n, int rounds, F &&body)
{
    double best = 1e30;
    for (int r = 0; r < rounds; ++r) {
        auto t0 = Clock::now();
        body(n);
        double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / static_cast<double>(n);
        if (ns < best) best = ns;
    }
    return best;
}

void noop(void *arg) { ++*static_cast<long *>(arg); }

bool g_stop = false;

void yielder(void *arg)
{
    while (!g_stop) {
        ++*static_cast<long *>(arg);
        Fiber::yield();
    }
}

void bounce(bctx::detail::transfer_t t)
{
    for (;;) t = bctx::detail::jump_fcontext(t.fctx, nullptr);
}

} // namespace

int main(int argc, char **argv)
{
    const long n = argc > 1 ? std::atol(argv[1]) : 1000000;
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
    long count = 0;

    StackPool pool;
    Fiber f(pool);
    double job = best_ns(n, rounds, [&](long k) {
        for (long i = 0; i < k; ++i) {
            f.start(&noop, &count);
            f.resume();
        }
    });

    Fiber y(pool);
    y.start(&yielder, &count);
    double yield = best_ns(n, rounds, [&](long k) {
        for (long i = 0; i < k; ++i) y.resume();
    });
    g_stop = true;
    y.resume();

    StackPool::Stack s = pool.acquire();
    bctx::detail::fcontext_t ctx = bctx::detail::make_fcontext(s.hi(), pool.stack_size(), &bounce);
    double raw = best_ns(n, rounds, [&](long k) {
        for (long i = 0; i < k; ++i) ctx = bctx::detail::jump_fcontext(ctx, nullptr).fctx;
    });
    // The bouncing context is abandoned on its stack: nothing there to clean up.
    pool.release(s);

    bctx::fiber other([](bctx::fiber &&caller) {
        for (;;) caller = std::move(caller).resume();
        return std::move(caller);
    });
    double bfiber = best_ns(n, rounds, [&](long k) {
        for (long i = 0; i < k; ++i) other = std::move(other).resume();
    });
    // `other` would be unwound here with forced_unwind; leave it (the process exits).
    std::printf("job %.1f ns  yield %.1f ns  fcontext %.1f ns  bctx-fiber %.1f ns  (best of %d x %ld)\n", job, yield,
                raw, bfiber, rounds, n);
    std::fflush(stdout);
    std::_Exit(count > 0 ? 0 : 1);
}
