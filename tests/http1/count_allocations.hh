// count_allocations.hh: replaces the global operator new and delete of a test program with
// ones that count allocations, for the tests that check a steady state allocates nothing.
// Include it in one file per program. Every form is replaced (array and nothrow ones too),
// so that under ASan no allocation comes from its operators and goes back through ours.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

inline std::atomic<size_t> g_allocations{0};

inline void *counted_alloc(size_t n) noexcept
{
    ++g_allocations;
    return std::malloc(n != 0 ? n : 1);
}

// None of them inlined: GCC would then see free() meet a pointer from operator new, or
// operator delete meet one from malloc() (at -O3), and warn.
__attribute__((noinline)) void *operator new(size_t n)
{
    if (void *p = counted_alloc(n)) return p;
    throw std::bad_alloc();
}
__attribute__((noinline)) void *operator new[](size_t n)
{
    if (void *p = counted_alloc(n)) return p;
    throw std::bad_alloc();
}
__attribute__((noinline)) void *operator new(size_t n, const std::nothrow_t &) noexcept { return counted_alloc(n); }
__attribute__((noinline)) void *operator new[](size_t n, const std::nothrow_t &) noexcept { return counted_alloc(n); }
__attribute__((noinline)) void operator delete(void *p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete[](void *p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void *p, size_t) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete[](void *p, size_t) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void *p, const std::nothrow_t &) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete[](void *p, const std::nothrow_t &) noexcept { std::free(p); }
