// test_arena.cc: per-request memory (lib/core/arena.hh; the app's alloc, MEM-ARENA-1, is
// tested through the test host in test_request.cc): the bump allocator's
// alignment and copies, requests bigger than a block, and the block pool behind the adapters'
// per-request objects (BlockAllocated): a freed block is the next one handed out, so a request
// in steady state reaches the heap for neither.
#include "cmocka.hh"

#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <thread>

#include "core/arena.hh"

using namespace cwsgi::core;

namespace {

void test_arena__allocations_are_aligned_and_counted(void **)
{
    Arena a;
    size_t total = 0;
    for (size_t n : {1u, 3u, 17u, 100u, 1000u, 3000u}) {
        void *p = a.alloc(n);
        assert_non_null(p);
        assert_int_equal(reinterpret_cast<uintptr_t>(p) % alignof(std::max_align_t), 0);
        std::memset(p, 0xab, n); // ASan: the whole size is ours
        total += n;
    }
    assert_true(a.bytes() >= total);
    a.release();
    assert_int_equal(a.bytes(), 0);
}

void test_arena__copy_is_nul_terminated(void **)
{
    Arena a;
    for (std::string_view s : {std::string_view(""), std::string_view("GET"), std::string_view("x-forwarded-for"),
                               std::string_view("a header value longer than sixteen bytes")}) {
        std::string_view c = a.copy(s);
        assert_true(c == s);
        assert_true(c.data() != s.data());
        assert_int_equal(c.data()[c.size()], '\0');
    }
}

void test_arena__request_bigger_than_a_block(void **)
{
    Arena a;
    const size_t big = Arena::kBlockSize * 3;
    auto *p = static_cast<unsigned char *>(a.alloc(big));
    assert_non_null(p);
    std::memset(p, 1, big);
    assert_non_null(a.alloc(8));        // the arena goes on after a block of its own
    assert_null(a.alloc(SIZE_MAX - 4)); // absurd sizes fail, not wrap
}

struct Small : BlockAllocated {
    char bytes[512];
};
struct Big : BlockAllocated {
    char bytes[Arena::kBlockSize * 2];
};

void test_arena__block_allocated_reuses_the_freed_block(void **)
{
    auto first = std::make_unique<Small>();
    void *where = first.get();
    first.reset();
    auto again = std::make_unique<Small>();
    assert_ptr_equal(again.get(), where); // from this thread's cache, not the heap
    std::memset(again->bytes, 0, sizeof again->bytes);
}

void test_arena__block_allocated_big_and_cross_thread(void **)
{
    auto big = std::make_unique<Big>(); // too big for a block: the heap
    std::memset(big->bytes, 2, sizeof big->bytes);
    big.reset();
    // Made on one thread, freed on another (a threads-mode request's last reference).
    auto s = std::make_unique<Small>();
    std::thread([p = std::move(s)]() mutable { p.reset(); }).join();
    auto t = std::make_unique<Small>();
    std::memset(t->bytes, 3, sizeof t->bytes);
}

} // namespace

int main()
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena__allocations_are_aligned_and_counted),
        cmocka_unit_test(test_arena__copy_is_nul_terminated),
        cmocka_unit_test(test_arena__request_bigger_than_a_block),
        cmocka_unit_test(test_arena__block_allocated_reuses_the_freed_block),
        cmocka_unit_test(test_arena__block_allocated_big_and_cross_thread),
    };
    return cmocka_run_group_tests_name("core_arena", tests, nullptr, nullptr);
}
